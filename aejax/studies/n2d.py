"""N2D reproduced on a trained autoencoder: the published clustering protocol over seeds and checkpoints.

`run(workdir, seeds)` codes every image of the run's dataset (train + test) with
the run's latest checkpoint, clusters them by `aejax.evaluation.n2d` once per
clustering seed, and writes DIR/n2d.json (atomically) beside the paper's figures;
with `curve_epochs` it also scores kept checkpoints (seed 0: every one, or the
nearest to each epoch asked), the accuracy-against-epochs curve drawn to
DIR/n2d_accuracy.png, so a run stopped
short of the paper's 1,000 epochs shows how far it got and where it was heading.
"""
from __future__ import annotations

import dataclasses
import json
import os

import ml_collections
import numpy as np

from aejax.core import timing
from aejax.data import dataset_info, splits
from aejax.evaluation import n2d
from aejax.figures.plots import pyplot
from aejax.training import checkpoint
from aejax.training.restore import load, load_config
from aejax.core.files import atomic_write
from aejax.training.workdir import OUTPUT_ROOM, check_writable

CODE_BATCH = 5_000


def all_images(config: ml_collections.ConfigDict) -> splits.Split:
    """Every image of the run's dataset (train then test), as the deep-clustering protocol scores them."""
    every = ml_collections.ConfigDict(config.to_dict())
    every.train_split = "all"
    return splits.load(every, "train")


def codes_of(trained, images: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(trained.code(images[i:i + CODE_BATCH]))
                           for i in range(0, len(images), CODE_BATCH)])


def _epoch(config, step: int) -> float:
    return step / max(1, int(config.num_train_examples) // int(config.batch_size))


def score_checkpoint(workdir: str, step: int | None, data: splits.Split, num_clusters: int, seeds,
                     protocol: n2d.Protocol = n2d.Protocol()) -> dict:
    trained = load(workdir, step)
    codes = codes_of(trained, data.images)
    per_seed = []
    for seed in seeds:
        with timing.stage(f"N2D of {len(codes):,} codes, step {trained.step}, seed {seed} "
                          "(UMAP + GMM: ~1.5 min for 70,000 on a free core)"):
            per_seed.append(n2d.n2d_scores(codes, data.labels, num_clusters, seed=seed, protocol=protocol))
    return {"step": trained.step, "epoch": _epoch(trained.config, trained.step), "per_seed": per_seed,
            "summary": n2d.summarize(per_seed)}


def curve_steps(available: list[int], epochs, steps_per_epoch: int) -> list[int]:
    """The kept checkpoints to score for the curve: all of them for "all", else the one nearest each epoch asked."""
    if epochs == "all":
        return list(available)
    nearest = {min(available, key=lambda s: abs(s - e * steps_per_epoch)) for e in epochs} if available else set()
    return sorted(nearest)


def result_name(protocol: n2d.Protocol) -> str:
    """DIR/n2d.json for the paper's protocol; another UMAP dimension writes beside it (n2d_umap2.json)."""
    return "n2d" if protocol == n2d.Protocol() else f"n2d_umap{protocol.umap_dim}"


def run(workdir: str, seeds=(0, 1, 2), curve_epochs=(), protocol: n2d.Protocol = n2d.Protocol()) -> dict:
    """Scores the latest checkpoint over `seeds`; `curve_epochs` ("all", or epochs) adds the accuracy curve."""
    config = load_config(workdir)  # the run's config.json; `score_checkpoint` restores each checkpoint it scores
    check_writable(workdir, create=False, room=OUTPUT_ROOM)  # before the minutes of UMAP
    data = all_images(config)
    num_clusters = dataset_info(config.dataset).num_classes
    if protocol.umap_dim == num_clusters:  # the paper's protocol, asked for by its number
        protocol = dataclasses.replace(protocol, umap_dim=0)
    latest = score_checkpoint(workdir, None, data, num_clusters, seeds, protocol)
    curve = []
    if curve_epochs:
        available = checkpoint.Checkpointer(workdir, read_only=True).all_steps()
        steps_per_epoch = max(1, int(config.num_train_examples) // int(config.batch_size))
        for step in sorted(set(curve_steps(available, curve_epochs, steps_per_epoch)) | {latest["step"]}):
            scored = latest if step == latest["step"] else score_checkpoint(workdir, step, data, num_clusters, (0,),
                                                                             protocol)
            curve.append({"step": step, "epoch": scored["epoch"], **scored["per_seed"][0]})
        if curve:
            plot_curve(os.path.join(workdir, f"{result_name(protocol)}_accuracy.png"), curve, config)
    dim = protocol.umap_dim or f"{num_clusters} (the classes)"
    result = {"dataset": config.dataset, "num_images": len(data.labels), "seeds": list(seeds),
              "protocol": f"codes of all images → UMAP (dim {dim}, {protocol.n_neighbors} neighbours, min_dist "
                          f"{protocol.min_dist:g}) → full GMM",
              "epochs_configured": config.num_epochs, **latest, "curve": curve,
              "published": n2d.PUBLISHED.get(config.dataset) if protocol == n2d.Protocol() else None}
    atomic_write(os.path.join(workdir, f"{result_name(protocol)}.json"), json.dumps(result, indent=2))
    return result


def score_assignment(workdir: str, path: str) -> dict:
    """Scores a clustering saved elsewhere (e.g. by the paper's code) against the labels of the run's dataset.

    One cluster id per line for every image, train then test (the order `all_images`
    and the paper's `load_fashion` share); the same scorer as this module's own rows.
    """
    config = load_config(workdir)  # the dataset is all it needs: no checkpoint restored
    labels = all_images(config).labels
    scores = n2d.assignment_scores(labels, n2d.read_assignment(path, len(labels)))
    return {"dataset": config.dataset, "num_images": len(labels), "file": path, **scores,
            "published": n2d.PUBLISHED.get(config.dataset)}


def plot_curve(path: str, curve: list[dict], config) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    epochs = [c["epoch"] for c in curve]
    for name in ("accuracy", "nmi", "ari"):
        ax.plot(epochs, [c[name] for c in curve], marker="o", label=name)
    for i, (name, value) in enumerate((n2d.PUBLISHED.get(config.dataset) or {}).items()):
        ax.axhline(value, linestyle="--", linewidth=0.8, color="grey")
        ax.annotate(f"paper {name} {value}", (epochs[-1], value), xytext=(0, 3 + 9 * i), textcoords="offset points",
                    ha="right", fontsize=7)
    ax.set(xlabel=f"training epoch (the paper trains {config.num_epochs})", ylabel="score (clustering seed 0)",
           ylim=(0, 1))
    ax.set_title(f"N2D on {config.dataset}, autoencoder seed {config.seed}", fontsize=11)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def report_assignment(result: dict) -> str:
    paper = result.get("published") or {}
    return (f"{result['file']}: {result['num_images']:,} images of {result['dataset']}: accuracy "
            f"{result['accuracy']:.3f}, NMI {result['nmi']:.3f}, ARI {result['ari']:.3f}"
            + (f" (paper: accuracy {paper['accuracy']}, NMI {paper['nmi']})" if paper else "") + "\n")


def report(result: dict) -> str:
    s, paper = result["summary"], result.get("published") or {}
    lines = [f"N2D on {result['dataset']}: {result['num_images']:,} images, step {result['step']} "
             f"(epoch {result['epoch']:.0f} of the configured {result['epochs_configured']}), "
             f"clustering seeds {','.join(map(str, result['seeds']))}; {result['protocol']}",
             f"{'':10}{'accuracy':>18}{'NMI':>18}{'ARI':>18}",
             "aejax     " + "".join(f"{s[k]['mean']:>11.3f} ± {s[k]['std']:.3f}" for k in ("accuracy", "nmi", "ari")),
             "paper     " + "".join(f"{paper[k]:>18.3f}" if k in paper else f"{'—':>18}"
                                    for k in ("accuracy", "nmi", "ari"))]
    for c in result["curve"]:
        lines.append(f"  epoch {c['epoch']:6.0f}: accuracy {c['accuracy']:.3f}, NMI {c['nmi']:.3f}, ARI {c['ari']:.3f}")
    return "\n".join(lines) + "\n"
