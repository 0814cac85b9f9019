"""Disentanglement scores of a trained run on a dataset with ground-truth factors (dSprites).

    python -m aejax.disentanglement_eval --workdir=DIR [--seed=0] [--step=N] \
        [--size=beta_vae_score.num_train=100 ...]

prints the scores and merges them into DIR/eval.json (created if missing). The
evaluate command calls `disentanglement_metrics(trained, seed=...)`, which returns
None for datasets without factors.

The factor space is the dataset's grid (`aejax.data.dataset_info(...).factor_sizes`);
an observation is the image the dataset stores for those factor indices, rendered on
the fly (`aejax.data.observe_factors`: `SpriteGrid.render`, uint8 0/255, what the
model was trained on, since binarisation leaves 0/1 images unchanged). The
representation is `trained.code`: the posterior mean for the VAE family, the code
otherwise. Sample counts (`DEFAULT_SIZES`) are cut from disentanglement_lib's so all
four metrics run in about a minute on 2 CPU cores for a 64x64 encoder (54 s of CPU,
64 s of wall measured with the 1200-1200 MLP encoder, whose forward pass costs about
what the Burgess conv encoder's does; rendering is ~0.15 ms of CPU an image); the
standard errors this leaves are stated next to each.
"""
from __future__ import annotations

import inspect
import json
import os
import sys
import time
from typing import Any

import numpy as np
from absl import app, flags, logging

from aejax import data
from aejax.metrics import disentanglement as dm

PREFIX = "disentanglement/"
ENCODE_CHUNK = 512  # images per encoder call; every call is padded to this (one compiled shape)

# Per metric (function name in aejax.metrics.disentanglement) -> keyword arguments.
# disentanglement_lib's counts in brackets; standard errors of an accuracy p over n
# points are sqrt(p(1-p)/n), e.g. ±0.02 at p = 0.8 for n = 400.
DEFAULT_SIZES: dict[str, dict[str, Any]] = {
    # 2 * 64 * (300 + 200) = 64,000 images [1.92M]. Eval accuracy over 200 points: ±0.03.
    "beta_vae_score": dict(batch_size=64, num_train=300, num_eval=200),
    # 5,000 + 64 * (300 + 200) = 37,000 images [970k]. Eval accuracy over 200 votes: ±0.03.
    "factor_vae_score": dict(batch_size=64, num_train=300, num_eval=200, num_variance_estimate=5_000),
    # 10,000 images [10,000]: the plug-in MI bias (~(bins-1)(|v|-1)/2N) stays < 0.06 nats.
    "mutual_info_gap": dict(num_samples=10_000),
    # 5,000 + 2,000 images [10,000 + 5,000].
    "dci_disentanglement": dict(num_train=5_000, num_test=2_000),
}


def _padded_code(trained, chunk_size: int):
    """trained.code as numpy, every call padded to `chunk_size` rows so it compiles once."""

    def represent(images: np.ndarray) -> np.ndarray:
        n = len(images)
        codes = []
        for start in range(0, n, chunk_size):
            part = images[start:start + chunk_size]
            pad = chunk_size - len(part)
            if pad:
                part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), part.dtype)])
            codes.append(np.asarray(trained.code(part))[:chunk_size - pad])
        return np.concatenate(codes)

    return represent


def factor_space(dataset: str) -> dm.FactorSpace | None:
    """The ground-truth factor space of `dataset`, or None if it has no factors."""
    observe = data.observe_factors(dataset)
    if observe is None:
        return None
    return dm.FactorSpace(tuple(data.dataset_info(dataset).factor_sizes), observe)


def disentanglement_metrics(trained, *, seed: int = 0, **sizes: dict[str, Any]) -> dict[str, float] | None:
    """BetaVAE, FactorVAE, MIG and DCI scores of `trained` as {"disentanglement/...": float}.

    None if the run's dataset has no ground-truth factors. `sizes` maps a metric's name
    (keys of DEFAULT_SIZES) to keyword arguments that update its defaults, e.g.
    `mutual_info_gap={"num_samples": 2000}`. Same model, seed and sizes: same numbers.
    """
    space = factor_space(trained.config.dataset)
    if space is None:
        return None
    unknown = set(sizes) - set(DEFAULT_SIZES)
    if unknown:
        raise TypeError(f"unknown metrics {sorted(unknown)}; use {sorted(DEFAULT_SIZES)}")
    per_metric = {name: {**defaults, **sizes.get(name, {})} for name, defaults in DEFAULT_SIZES.items()}
    start = time.perf_counter()
    scores = dm.all_disentanglement_metrics(space, _padded_code(trained, ENCODE_CHUNK), seed,
                                            per_metric=per_metric, chunk_size=ENCODE_CHUNK)
    logging.info("disentanglement metrics of %s in %.0fs", trained.config.dataset, time.perf_counter() - start)
    return {PREFIX + name: float(value) for name, value in scores.items()}


def merge_into_eval_json(workdir: str, scores: dict[str, float]) -> str:
    """Adds `scores` to workdir/eval.json (replacing keys it already has); returns the path."""
    path = os.path.join(workdir, "eval.json")
    existing = {}
    if os.path.exists(path):
        with open(path) as f:
            existing = json.load(f)
    existing.update(scores)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(existing, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


def parse_sizes(entries: list[str]) -> dict[str, dict[str, Any]]:
    """["beta_vae_score.num_train=100", ...] -> {"beta_vae_score": {"num_train": 100}}; ConfigError if malformed."""
    from aejax.config_validation import ConfigError
    accepted = {metric.__name__: set(inspect.signature(metric).parameters) for metric in dm.METRICS}
    sizes: dict[str, dict[str, Any]] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        metric, _, name = key.partition(".")
        if not sep or name not in accepted.get(metric, ()):
            raise ConfigError(f"--size={entry}: use METRIC.KEY=VALUE with METRIC one of "
                              f"{', '.join(accepted)} and KEY one of its keyword arguments")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value  # a string, e.g. estimator=random_forest
        sizes.setdefault(metric, {})[name] = parsed
    return sizes


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    import aejax
    from aejax import cli
    flag = flags.FLAGS
    with cli.one_line_errors():
        sizes = parse_sizes(flag.size)
        trained = aejax.load(flag.workdir, flag.step)
        scores = disentanglement_metrics(trained, seed=flag.seed, **sizes)
        if scores is None:
            print(f"{trained.config.dataset} has no ground-truth factors; nothing to do", file=sys.stderr)
            return
        path = merge_into_eval_json(flag.workdir, scores)
        for name, value in sorted(scores.items()):
            print(f"{name}: {value:.4f}")
        print(f"merged into {path}")


def _define_flags() -> None:
    """Only when run as a command: importing this module (from evaluate) defines no flags."""
    flags.DEFINE_string("workdir", None, "Training workdir (checkpoints/ inside).")
    flags.DEFINE_integer("seed", 0, "Seed of the metrics' factor samples.")
    flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
    flags.DEFINE_multi_string("size", [], "METRIC.KEY=VALUE overrides of DEFAULT_SIZES, e.g. "
                              "mutual_info_gap.num_samples=2000.")
    flags.mark_flags_as_required(["workdir"])


if __name__ == "__main__":
    _define_flags()
    app.run(main)
