"""Figures of a trained run: what `python -m aejax.inspect` writes under DIR/inspect/.

`inspect_run` gathers what the figures draw (the run restored, its evaluation
split encoded, 2-D projections of the codes, the eval table of eval.json) and
hands it to `aejax.figures`. Every figure works for every variant through its
registry fields. Each step says when it starts and ends (and every 15 s between,
`aejax.core.timing.stage`): PCA and UMAP of thousands of codes take a minute on
2 cores.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable

import jax
import numpy as np
from absl import logging

from aejax.core import timing
from aejax.core.distributions import kl_divergence
from aejax.core.files import save_arrays
from aejax.data.catalog import dataset_info
from aejax.evaluation import clustering
from aejax.evaluation.evaluate_run import read_report, table_rows
from aejax.evaluation.inspect_conditional import conditional_figures
from aejax.evaluation.inputs import codes_of, encode_all, evaluation_split, load_eval_data
from aejax.figures import grids, latents, plots
from aejax.figures.latents import GRID_PROBABILITIES
from aejax.figures.page import EvalTable, Figure, save_figure, write_index_html
from aejax.objectives.denoising import CORRUPTIONS
from aejax.training.restore import load, load_config
from aejax.training.workdir import OUTPUT_ROOM, check_writable


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


def corruption(config) -> tuple[Callable[[jax.Array, Any], Any] | None, str]:
    """(key, x) → x̃ for a denoising config (the training corruption), or (None, why not)."""
    name = config.get("corruption")
    if not name:
        return None, "the config has no corruption"
    if name not in CORRUPTIONS:
        return None, f"config.corruption={name!r} is not in CORRUPTIONS ({', '.join(CORRUPTIONS)})"
    return (lambda key, x: CORRUPTIONS[name](key, x, config)), ""


def inspect_run(workdir: str, step: int | None = None,
                options: InspectOptions = InspectOptions()) -> list[Figure]:
    """Every figure of the run, `latents.npz` and `index.html`, under workdir/inspect/."""
    out = os.path.join(workdir, "inspect")
    with timing.stage("inspect: restore the run and load its evaluation split"):
        trained = load(workdir, step)
        check_writable(out, what="the output folder", room=OUTPUT_ROOM)  # before the minutes of computing
        config = trained.config
        data = load_eval_data(config, evaluation_split(config), options.max_examples)
    if trained.variant.conditional:  # every figure below encodes or decodes without a class
        return conditional_figures(trained, data, out, options, page_title(workdir), eval_table(workdir),
                                   load_config(workdir).to_dict())
    with timing.stage(f"inspect: encode {len(data.x)} images"):
        encoded = encode_all(trained, data.x, 500)
        codes = codes_of(trained, encoded).astype(np.float32)
    class_names = dataset_info(config.dataset).class_names
    key = jax.random.PRNGKey(options.seed)
    num = min(options.num_images, len(data.grey))
    num_cols = int(np.sqrt(num)) if num >= 16 else num
    shown: list[Figure] = []
    save = functools.partial(save_figure, out, shown)

    save("reconstructions.png", grids.reconstruction_grid(trained, data.grey[:num], num_cols), "Reconstructions",
         "Rows labelled input: grey-level test inputs; below each, reconstruction: decode(code(x)), the "
         "decoder's mean image.")
    if trained.can_sample:
        prior = ("N(0, I)" if trained.variant.generative else
                 f"the ex-post Gaussian mixture ({trained.fitted_prior.num_components} components) of the training codes")
        save("samples.png", grids.sample_grid(trained, key, num, num_cols), "Samples from the prior",
             f"decode(z) for z ~ {prior}: the decoder's mean image.")

    # Latents: saved for notebooks, then scattered in 2-D.
    arrays = {"codes": codes, "labels": data.labels}
    if trained.variant.probabilistic_encoder:
        arrays["logvar"] = np.asarray(encoded[1], np.float32)
    subset = np.random.default_rng(options.seed).permutation(len(codes))[:options.scatter_points]
    subset.sort()
    if codes.shape[1] == 2:
        projections = {"codes": (codes[subset], ("z_0", "z_1"), "the 2-D codes themselves")}
    else:
        with timing.stage(f"inspect: PCA of {len(codes)} codes"):
            projections = {"pca": (clustering.pca_codes(codes, codes[subset], 2), ("PC 1", "PC 2"),
                                   "PCA of the codes (fit on all test codes)")}
        if options.umap:
            with timing.stage(f"inspect: UMAP of {len(subset)} codes"):
                projections["umap"] = (clustering.umap_codes(codes[subset], dim=2, min_dist=0.1, seed=options.seed),
                                       ("UMAP 1", "UMAP 2"), "UMAP of the codes (n_neighbors 20, min_dist 0.1)")
    arrays["scatter_index"] = subset
    for name, (points, axes, how) in projections.items():
        arrays[f"{name}_2d"] = np.asarray(points, np.float32)
        filename = f"latents_{name}.png"
        with timing.stage(f"inspect: scatter plot {filename}"):
            plots.scatter_plot(os.path.join(out, filename), points, data.labels[subset],
                               f"{config.model}: test codes, {how}", axes, class_names)
        shown.append(Figure(filename, f"Latent space ({name})",
                            f"{len(subset)} test codes ({'posterior means' if trained.variant.probabilistic_encoder else 'codes'}), "
                            f"{how}, coloured by class."))
    grid, (first, second) = latents.manifold_grid(trained, codes, options.grid_size)
    cdf = "N(0, 1) prior" if trained.variant.generative else "empirical distribution of the test codes"
    save("manifold.png", grid, "Latent manifold",
         f"Decodings over the inverse CDF ({cdf}) of an evenly spaced {options.grid_size}² grid in "
         f"{GRID_PROBABILITIES}; x: z_{first}, y: z_{second} (upwards)"
         + ("" if codes.shape[1] == 2 else "; the two most active dims, the others at "
            + ("0." if trained.variant.generative else "the mean code.")))
    kl_per_dim = None
    if trained.variant.probabilistic_encoder:  # mean KL(q(z_d|x) ‖ N(0, 1)) over the test images, per dim
        kl_per_dim = np.mean(np.asarray(kl_divergence(*encoded)), axis=0)
        arrays["kl_per_dim"] = kl_per_dim.astype(np.float32)
    grid, dims = latents.traversal_grid(trained, codes, codes[0], options.traversal_steps, options.max_traversal_dims,
                                        kl_per_dim)
    save("traversals.png", grid, "Latent traversals",
         f"Row i: the code of test image 0 with one latent dim set to {options.traversal_steps} values "
         f"of the inverse CDF ({cdf}); rows are dims {', '.join(map(str, dims))} (most active first), each "
         "labelled with its dim" + (" and its KL in nats (mean over the test images)." if kl_per_dim is not None
                                   else "."))
    pairs = latents.interpolation_pairs(data.labels, options.interpolation_pairs)
    save("interpolations.png", latents.interpolation_grid(trained, data.grey, codes, pairs, options.interpolation_steps),
         "Interpolations", "Each row: a test image, decodings of the straight line between its code and "
                           "the next one's, the other test image (pairs from different classes).")
    corrupt, why_not = corruption(config)
    if corrupt is not None:
        save("denoising.png", grids.denoising_grid(trained, corrupt, jax.random.fold_in(key, 1), data.grey[:num],
                                             num_cols), "Denoising",
             f"Rows of three: clean inputs, corrupted by {config.corruption!r}, reconstructions.")
    else:
        logging.info("inspect: no denoising figure: %s", why_not)
    save_arrays(os.path.join(out, "latents.npz"), **arrays)
    notes = [] if corrupt is not None else [f"No denoising figure: {why_not}."]
    write_index_html(os.path.join(out, "index.html"), page_title(workdir), shown, eval_table(workdir),
                     load_config(workdir).to_dict(), notes)
    return shown


def page_title(workdir: str) -> str:
    config = load_config(workdir)
    return (f"{os.path.basename(os.path.abspath(workdir))}: {config.get('model')} on "
            f"{config.get('dataset')}")


def eval_table(workdir: str) -> EvalTable | None:
    """The run's eval.json as the page shows it, or None if it has not been evaluated."""
    report = read_report(workdir)
    if report is None:
        return None
    return EvalTable(
        heading=(f"Evaluation (step {report['step']}, {report['split']} split, "
                 f"{report['num_examples']} images)"),
        conventions=(f"Units: {report['units']}. Data: binarize={report['binarize']} — "
                     f"{report['data_convention']}. K = {report['options']['num_importance_samples']}."),
        rows=table_rows(report))


