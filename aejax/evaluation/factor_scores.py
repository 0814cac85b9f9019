"""Disentanglement scores of a trained run on a dataset with ground-truth factors (dSprites).

The factor space is the dataset's grid (`aejax.data.dataset_info(...).factor_sizes`);
an observation is the image the dataset stores for those factor indices, rendered on
the fly (`aejax.data.observe_factors`: `SpriteGrid.render`, uint8 0/255, what the
model was trained on, since binarisation leaves 0/1 images unchanged). The
representation is `trained.code`: the posterior mean for the VAE family, the code
otherwise. Sample counts (`DEFAULT_SIZES`) are cut from disentanglement_lib's so
BetaVAE, FactorVAE and MIG run in about a minute on 2 CPU cores for a 64x64 encoder
(measured with the 1200-1200 MLP encoder, whose forward pass costs about what the
Burgess conv encoder's does; rendering is ~0.15 ms of CPU an image); DCI fits
disentanglement_lib's 100 boosted trees per factor, ~2.5 min of CPU more. The
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
from aejax.core.files import atomic_write

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
    # 5,000 + 2,000 images [10,000 + 5,000]; 100 boosted trees as in disentanglement_lib (~2.5 min of CPU
    # on dSprites, one factor per core; 10 trees took 15 s but overstate disentanglement ~3x).
    "dci_disentanglement": dict(num_train=5_000, num_test=2_000),
    # 5,000 + 2,000 images [10,000 + 5,000]; one 1-D linear SVM per (dim, factor). 7 s for a 10-d code on
    # dsprites_small's grid at load 11 on 2 cores (full grid: 40 and 32 classes, several times that).
    "sap_score": dict(num_train=5_000, num_test=2_000),
    # 5,000 + 2,000 images [10,000 + 5,000]: modularity's plug-in MI as MIG's at half the samples (bias
    # < 0.12 nats); one logistic regression per factor for explicitness. 11 s as SAP's above.
    "modularity_explicitness": dict(num_train=5_000, num_test=2_000),
}


def factor_space(dataset: str) -> dm.FactorSpace | None:
    """The ground-truth factor space of `dataset`, or None if it has no factors."""
    observe = observe_factors(dataset)
    if observe is None:
        return None
    return dm.FactorSpace(tuple(dataset_info(dataset).factor_sizes), observe)


def disentanglement_metrics(trained, *, seed: int = 0, **sizes: dict[str, Any]) -> dict[str, float] | None:
    """BetaVAE, FactorVAE, MIG, DCI, SAP, modularity and explicitness scores as {"disentanglement/...": float}.

    None if the run's dataset has no ground-truth factors. `sizes` maps a metric's name
    (keys of DEFAULT_SIZES) to keyword arguments that update its defaults, e.g.
    `mutual_info_gap={"num_samples": 2000}`. Same model, seed and sizes: same numbers.
    """
    space = factor_space(trained.config.dataset)
    if space is None:
        return None

    def represent(images: np.ndarray) -> np.ndarray:  # every call padded to ENCODE_CHUNK: one compiled shape
        return map_batches(lambda batch, i: trained.code(batch), images, ENCODE_CHUNK)

    return _scores(space, represent, seed, sizes, trained.config.dataset)


def shared_disentanglement_metrics(dataset: str, represent_all, num_models: int, *, seed: int = 0,
                                   **sizes: dict[str, Any]) -> list[dict[str, float]] | None:
    """The scores of `num_models` models at once, as `disentanglement_metrics` gives each with this seed.

    With one seed every model's metrics draw the same factors, so each batch of
    observations is rendered and encoded once, for all models (`represent_all`:
    images → codes [num_models, n, D], e.g. a vmapped encoder), and each model's
    metrics read their codes back in the same order of calls (checked).
    """
    space = factor_space(dataset)
    if space is None:
        return None
    calls: list[tuple[np.ndarray, np.ndarray | None]] = []  # (factors, codes of every model) per call

    def represent_of(model: int):
        position = [0]  # this model's next call (model 0 runs first and encodes for all)

        def represent(factors: np.ndarray) -> np.ndarray:
            k, position[0] = position[0], position[0] + 1
            if model == 0:
                calls.append((factors, np.asarray(represent_all(space.observe(factors)))))
            elif not np.array_equal(calls[k][0], factors):
                raise RuntimeError("the metrics of two models drew different factors from one seed")
            codes = calls[k][1][model]
            if model == num_models - 1:
                calls[k] = (calls[k][0], None)  # read by every model: free it
            return codes
        return represent

    factors_only = dm.FactorSpace(space.factor_sizes, lambda factors: factors)
    return [_scores(factors_only, represent_of(model), seed, sizes, dataset) for model in range(num_models)]


def _scores(space: dm.FactorSpace, represent, seed: int, sizes: dict[str, Any], dataset: str) -> dict[str, float]:
    unknown = set(sizes) - set(DEFAULT_SIZES)
    if unknown:
        raise TypeError(f"unknown metrics {sorted(unknown)}; use {sorted(DEFAULT_SIZES)}")
    per_metric = {name: {**defaults, **sizes.get(name, {})} for name, defaults in DEFAULT_SIZES.items()}
    start = time.perf_counter()
    scores = dm.all_disentanglement_metrics(space, represent, seed, per_metric=per_metric,
                                            chunk_size=ENCODE_CHUNK)
    logging.info("disentanglement metrics of %s in %.0fs", dataset, time.perf_counter() - start)
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
