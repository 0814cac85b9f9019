"""Disentanglement scores of a trained run on a dataset with ground-truth factors (dSprites).

The factor space is the dataset's grid (`aejax.data.dataset_info(...).factor_sizes`);
an observation is the image the dataset stores for those factor indices, rendered on
the fly (`aejax.data.observe_factors`: `SpriteGrid.render`, uint8 0/255, what the
model was trained on, since binarisation leaves 0/1 images unchanged). The
representation is `trained.code`: the posterior mean for the VAE family, the code
otherwise. Sample counts (`DEFAULT_SIZES`) are cut from disentanglement_lib's so all
four metrics run in about a minute on 2 CPU cores for a 64x64 encoder (54 s of CPU,
64 s of wall measured with the 1200-1200 MLP encoder, whose forward pass costs about
what the Burgess conv encoder's does; rendering is ~0.15 ms of CPU an image); the
standard errors this leaves are stated next to each. `python -m aejax.disentanglement_eval`
is the command; `aejax.evaluate` calls `disentanglement_metrics` on dSprites runs.
"""
from __future__ import annotations

import inspect
import json
import os
import time
from typing import Any

import numpy as np
from absl import logging

from aejax.core.batching import map_batches
from aejax.core.errors import ConfigError
from aejax.data.catalog import dataset_info, observe_factors
from aejax.evaluation import disentanglement as dm
from aejax.training.workdir import atomic_write

PREFIX = "disentanglement/"
ENCODE_CHUNK = 512  # images per encoder call; every call is padded to this (one compiled shape)

# Per metric (function name in aejax.evaluation.disentanglement) -> keyword arguments.
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


def factor_space(dataset: str) -> dm.FactorSpace | None:
    """The ground-truth factor space of `dataset`, or None if it has no factors."""
    observe = observe_factors(dataset)
    if observe is None:
        return None
    return dm.FactorSpace(tuple(dataset_info(dataset).factor_sizes), observe)


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
    def represent(images: np.ndarray) -> np.ndarray:  # every call padded to ENCODE_CHUNK: one compiled shape
        return map_batches(lambda batch, i: trained.code(batch), images, ENCODE_CHUNK)

    scores = dm.all_disentanglement_metrics(space, represent, seed, per_metric=per_metric,
                                            chunk_size=ENCODE_CHUNK)
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
    atomic_write(path, json.dumps(existing, indent=2, sort_keys=True))
    return path


def parse_sizes(entries: list[str]) -> dict[str, dict[str, Any]]:
    """["beta_vae_score.num_train=100", ...] -> {"beta_vae_score": {"num_train": 100}}; ConfigError if malformed."""
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
