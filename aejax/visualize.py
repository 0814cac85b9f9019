"""Figures of a trained run: what `python -m aejax.inspect` writes under DIR/inspect/.

Every figure works for every variant through its registry fields: the latent
grid of a `generative` variant is the inverse CDF of its prior N(0, I), that of
any other variant the inverse empirical CDF of its test codes (a deterministic
code has no prior, and 0 need not be a typical code). Image grids are PNGs
made with aejax.figures; scatter plots use matplotlib's Agg backend.
"""
from __future__ import annotations

import dataclasses
import html
import json
import os
from typing import Any, Callable

import jax
import numpy as np
from absl import logging
from scipy import stats

import aejax
from aejax import evaluation, figures
from aejax.metrics import clustering
from aejax.restore import load_config

# Probabilities of the latent grid: evenly spaced, then mapped through an inverse CDF.
GRID_PROBABILITIES = (0.05, 0.95)


@dataclasses.dataclass(frozen=True)
class InspectOptions:
    num_images: int = 64          # reconstructions and samples
    grid_size: int = 16           # the latent manifold is grid_size × grid_size decodings
    traversal_steps: int = 11
    max_traversal_dims: int = 32  # the most active dims, if the code is wider
    interpolation_pairs: int = 6
    interpolation_steps: int = 10
    scatter_points: int = 5000    # test codes in the scatter plots (UMAP time grows with it)
    umap: bool = True
    max_examples: int = 0         # 0 = the whole evaluation split (cap it for dSprites-sized data)
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Figure:
    filename: str
    title: str
    caption: str


# -------------------------------------------------------------- latents ----

def latent_centre(trained, codes: np.ndarray) -> np.ndarray:
    """The prior mean (0) of a generative variant, else the mean test code."""
    return np.zeros(codes.shape[1], np.float32) if trained.variant.generative else codes.mean(0)


def latent_values(trained, codes: np.ndarray, dim: int, num: int) -> np.ndarray:
    """`num` values of latent `dim` at evenly spaced probabilities of its (prior or empirical) CDF."""
    probabilities = np.linspace(*GRID_PROBABILITIES, num)
    if trained.variant.generative:
        return stats.norm.ppf(probabilities).astype(np.float32)
    return np.quantile(codes[:, dim], probabilities).astype(np.float32)


def dims_by_activity(codes: np.ndarray) -> np.ndarray:
    """Latent dims ordered by Cov_x of the code (the active-units statistic), largest first."""
    return np.argsort(-np.var(codes, axis=0), kind="stable")


def decode_images(trained, z: np.ndarray, batch_size: int = 500) -> np.ndarray:
    return evaluation.map_batches(lambda batch, i: trained.decode(batch), z.astype(np.float32), batch_size)


# ----------------------------------------------------------- image grids ----

def reconstruction_grid(trained, images: np.ndarray, num_cols: int) -> np.ndarray:
    """Rows of inputs, each followed by the row of their reconstructions."""
    recon = np.asarray(trained.reconstruct(images))
    return figures.image_grid(figures.interleave_rows(images, recon, num_cols), num_cols)


def sample_grid(trained, key: jax.Array, num: int, num_cols: int) -> np.ndarray:
    return figures.image_grid(np.asarray(trained.sample(key, num)), num_cols)


def manifold_grid(trained, codes: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Decodings over a size × size grid of the two most active latent dims, the others at the centre."""
    first, second = (0, 1) if codes.shape[1] == 2 else tuple(int(d) for d in dims_by_activity(codes)[:2])
    rows, cols = latent_values(trained, codes, second, size)[::-1], latent_values(trained, codes, first, size)
    z = np.tile(latent_centre(trained, codes), (size * size, 1))
    z[:, first] = np.tile(cols, size)
    z[:, second] = np.repeat(rows, size)   # top row = largest value, like a y axis
    return figures.image_grid(decode_images(trained, z), size, pad=0), (first, second)


def traversal_grid(trained, codes: np.ndarray, code: np.ndarray, steps: int,
                   max_dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Row d: `code` with latent d swept over its CDF grid (most active dims first)."""
    dims = dims_by_activity(codes)[:max_dims]
    z = np.tile(code, (len(dims) * steps, 1)).astype(np.float32)
    for row, dim in enumerate(dims):
        z[row * steps:(row + 1) * steps, dim] = latent_values(trained, codes, dim, steps)
    return figures.image_grid(decode_images(trained, z), steps), dims


def interpolation_grid(trained, images: np.ndarray, codes: np.ndarray, pairs: list[tuple[int, int]],
                       steps: int) -> np.ndarray:
    """Each row: image a, decodings of (1−t)·z_a + t·z_b for t in [0, 1], image b."""
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    z = np.concatenate([(1 - t) * codes[a] + t * codes[b] for a, b in pairs])
    decoded = decode_images(trained, z).reshape(len(pairs), steps, *images.shape[1:])
    rows = [np.concatenate([images[a][None], decoded[i], images[b][None]]) for i, (a, b) in enumerate(pairs)]
    return figures.image_grid(np.concatenate(rows), steps + 2)


def interpolation_pairs(labels: np.ndarray, num_pairs: int) -> list[tuple[int, int]]:
    """The first test image of class c paired with the first of the next class."""
    classes = np.unique(labels)
    firsts = [int(np.argmax(labels == c)) for c in classes]
    if len(firsts) < 2:
        return [(i, i + 1) for i in range(0, 2 * num_pairs, 2)]
    return [(firsts[i % len(firsts)], firsts[(i + 1) % len(firsts)]) for i in range(num_pairs)]


def corruption(config) -> tuple[Callable[[jax.Array, Any], Any] | None, str]:
    """(key, x) → x̃ for a denoising config (the training corruption), or (None, why not)."""
    from aejax.objectives.denoising import CORRUPTIONS
    name = config.get("corruption")
    if not name:
        return None, "the config has no corruption"
    if name not in CORRUPTIONS:
        return None, f"config.corruption={name!r} is not in CORRUPTIONS ({', '.join(CORRUPTIONS)})"
    return (lambda key, x: CORRUPTIONS[name](key, x, config)), ""


def denoising_grid(trained, corrupt, key: jax.Array, images: np.ndarray, num_cols: int) -> np.ndarray:
    """Rows of clean inputs, their corrupted versions, and the reconstructions of those."""
    noisy = np.asarray(corrupt(key, images))
    recon = np.asarray(trained.reconstruct(noisy))
    rows = []
    for start in range(0, len(images) - num_cols + 1, num_cols):
        rows += [images[start:start + num_cols], noisy[start:start + num_cols], recon[start:start + num_cols]]
    return figures.image_grid(np.concatenate(rows), num_cols)


# -------------------------------------------------------------- scatter ----

def scatter_plot(path: str, points: np.ndarray, labels: np.ndarray, title: str,
                 axis_names: tuple[str, str]) -> str:
    """2-D points coloured by class label (matplotlib, Agg)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=100)
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i, c in enumerate(classes):
        mask = labels == c
        ax.scatter(points[mask, 0], points[mask, 1], s=3, alpha=0.6, color=cmap(i % cmap.N), label=str(c),
                   rasterized=True)
    ax.set(title=title, xlabel=axis_names[0], ylabel=axis_names[1])
    ax.legend(title="label", markerscale=4, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ------------------------------------------------------------ the whole ----

def inspect_run(workdir: str, step: int | None = None,
                options: InspectOptions = InspectOptions()) -> list[Figure]:
    """Every figure of the run, `latents.npz` and `index.html`, under workdir/inspect/."""
    out = os.path.join(workdir, "inspect")
    os.makedirs(out, exist_ok=True)
    trained = aejax.load(workdir, step)
    config = trained.config
    data = evaluation.load_eval_data(config, evaluation.evaluation_split(config), options.max_examples)
    encoded = evaluation.encode_all(trained, data.x, 500)
    codes = evaluation.codes_of(trained, encoded).astype(np.float32)
    key = jax.random.PRNGKey(options.seed)
    num = min(options.num_images, len(data.grey))
    num_cols = int(np.sqrt(num)) if num >= 16 else num
    shown: list[Figure] = []

    def save(name: str, grid: np.ndarray, title: str, caption: str) -> None:
        figures.save_png(os.path.join(out, name), grid)
        shown.append(Figure(name, title, caption))
        logging.info("inspect: wrote %s", name)

    save("reconstructions.png", reconstruction_grid(trained, data.grey[:num], num_cols), "Reconstructions",
         "Odd rows: grey-level test inputs; even rows: decode(code(x)), the decoder's mean image.")
    if trained.variant.generative:
        save("samples.png", sample_grid(trained, key, num, num_cols), "Samples from the prior",
             "decode(z) for z ~ N(0, I): the decoder's mean image.")

    # Latents: saved for notebooks, then scattered in 2-D.
    arrays = {"codes": codes, "labels": data.labels}
    if trained.variant.probabilistic_encoder:
        arrays["logvar"] = np.asarray(encoded[1], np.float32)
    subset = np.random.default_rng(options.seed).permutation(len(codes))[:options.scatter_points]
    subset.sort()
    if codes.shape[1] == 2:
        projections = {"codes": (codes[subset], ("z_0", "z_1"), "the 2-D codes themselves")}
    else:
        projections = {"pca": (clustering.pca_codes(codes, codes[subset], 2), ("PC 1", "PC 2"),
                               "PCA of the codes (fit on all test codes)")}
        if options.umap:
            projections["umap"] = (clustering.umap_codes(codes[subset], dim=2, min_dist=0.1, seed=options.seed),
                                   ("UMAP 1", "UMAP 2"), "UMAP of the codes (n_neighbors 20, min_dist 0.1)")
    arrays["scatter_index"] = subset
    for name, (points, axes, how) in projections.items():
        arrays[f"{name}_2d"] = np.asarray(points, np.float32)
        filename = f"latents_{name}.png"
        scatter_plot(os.path.join(out, filename), points, data.labels[subset],
                     f"{config.model}: test codes, {how}", axes)
        shown.append(Figure(filename, f"Latent space ({name})",
                            f"{len(subset)} test codes ({'posterior means' if trained.variant.probabilistic_encoder else 'codes'}), "
                            f"{how}, coloured by label."))
    np.savez_compressed(os.path.join(out, "latents.npz"), **arrays)

    grid, (first, second) = manifold_grid(trained, codes, options.grid_size)
    cdf = "N(0, 1) prior" if trained.variant.generative else "empirical distribution of the test codes"
    save("manifold.png", grid, "Latent manifold",
         f"Decodings over the inverse CDF ({cdf}) of an evenly spaced {options.grid_size}² grid in "
         f"{GRID_PROBABILITIES}; x: z_{first}, y: z_{second} (upwards)"
         + ("" if codes.shape[1] == 2 else "; the two most active dims, the others at "
            + ("0." if trained.variant.generative else "the mean code.")))
    grid, dims = traversal_grid(trained, codes, codes[0], options.traversal_steps, options.max_traversal_dims)
    save("traversals.png", grid, "Latent traversals",
         f"Row i: the code of test image 0 with one latent dim set to {options.traversal_steps} values "
         f"of the inverse CDF ({cdf}); rows are dims {', '.join(map(str, dims))} (most active first).")
    pairs = interpolation_pairs(data.labels, options.interpolation_pairs)
    save("interpolations.png", interpolation_grid(trained, data.grey, codes, pairs, options.interpolation_steps),
         "Interpolations", "Each row: a test image, decodings of the straight line between its code and "
                           "the next one's, the other test image (pairs from different classes).")
    corrupt, why_not = corruption(config)
    if corrupt is not None:
        save("denoising.png", denoising_grid(trained, corrupt, jax.random.fold_in(key, 1), data.grey[:num],
                                             num_cols), "Denoising",
             f"Rows of three: clean inputs, corrupted by {config.corruption!r}, reconstructions.")
    else:
        logging.info("inspect: no denoising figure: %s", why_not)
    write_index_html(workdir, shown, extra_notes=[] if corrupt is not None else [f"No denoising figure: {why_not}."])
    return shown


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_index_html(workdir: str, shown: list[Figure], extra_notes: list[str] = ()) -> str:
    """inspect/index.html: every figure, the eval table (eval.json if present) and the config."""
    config = load_config(workdir).to_dict()
    report = evaluation.read_report(workdir)
    parts = [f"<h1>{html.escape(os.path.basename(os.path.abspath(workdir)))}: "
             f"{html.escape(str(config.get('model')))} on {html.escape(str(config.get('dataset')))}</h1>"]
    if report is None:
        parts.append("<p>No eval.json yet: run <code>python -m aejax.evaluate --workdir=...</code>.</p>")
    else:
        parts.append(f"<h2>Evaluation (step {report['step']}, {report['split']} split, "
                     f"{report['num_examples']} images)</h2>")
        parts.append(f"<p>Units: {html.escape(report['units'])}. Data: binarize={html.escape(report['binarize'])}"
                     f" — {html.escape(report['data_convention'])}. K = "
                     f"{report['options']['num_importance_samples']}.</p>")
        parts.append(_table(evaluation.table_rows(report), ("metric", "value", "meaning")))
    parts.append("<h2>Figures</h2>")
    for figure in shown:
        parts.append(f"<h3>{html.escape(figure.title)}</h3><p>{html.escape(figure.caption)}</p>"
                     f'<img src="{html.escape(figure.filename)}" alt="{html.escape(figure.title)}">')
    parts += [f"<p><em>{html.escape(note)}</em></p>" for note in extra_notes]
    parts.append("<h2>Config</h2>")
    parts.append(_table([(k, json.dumps(v)) for k, v in sorted(config.items())], ("key", "value")))
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}img{max-width:100%;"
             "image-rendering:pixelated}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
             "padding:2px 8px;text-align:left}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(workdir)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    path = os.path.join(workdir, "inspect", "index.html")
    with open(path, "w") as f:
        f.write(page)
    return path
