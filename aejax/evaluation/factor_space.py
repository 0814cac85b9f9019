"""The ground truth the disentanglement metrics share: a factor space, its sampling and encoding.

Every metric (aejax.evaluation.disentanglement, aejax.evaluation.sap_modularity) draws
factors from a ``FactorSpace``, turns them into codes with ``encode`` (observations
rendered and encoded ``chunk_size`` at a time) and, where it needs discrete codes,
bins them with ``discretize``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

Represent = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class FactorSpace:
    """Ground truth: independent discrete factors and the map from factor indices to observations.

    ``observe`` takes integer factor indices ``[N, K]`` and returns ``N`` observations
    (images or anything ``represent`` accepts). Factors are sampled uniformly and
    independently, which every metric assumes.
    """

    factor_sizes: tuple[int, ...]
    observe: Callable[[np.ndarray], np.ndarray]

    def __post_init__(self):
        if len(self.factor_sizes) < 2 or min(self.factor_sizes) < 2:
            raise ValueError(f"need >= 2 factors, each with >= 2 values; got {self.factor_sizes}")

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform random factor indices ``[n, K]``."""
        return rng.integers(0, self.factor_sizes, size=(n, self.num_factors))


def encode(space: FactorSpace, represent: Represent, factors: np.ndarray, *, chunk_size: int = 1024) -> np.ndarray:
    """Codes ``[N, D]`` (float64) of the observations of ``factors``, computed in chunks."""
    chunks = [
        np.asarray(represent(space.observe(factors[i : i + chunk_size])), dtype=np.float64)
        for i in range(0, len(factors), chunk_size)
    ]
    return np.concatenate([c.reshape(len(c), -1) for c in chunks])


def sample_batches(space: FactorSpace, num_points: int, batch_size: int, rng: np.random.Generator):
    """Per point, a factor ``k`` to hold fixed and a batch of uniform factors: ``(k [P], factors [P, B, K])``."""
    k = rng.integers(space.num_factors, size=num_points)
    return k, space.sample_factors(num_points * batch_size, rng).reshape(num_points, batch_size, space.num_factors)


def int_seed(rng: np.random.Generator) -> int:
    """A seed for sklearn estimators, drawn from (and so determined by) ``rng``."""
    return int(rng.integers(2**31 - 1))


def discretize(codes: np.ndarray, num_bins: int) -> np.ndarray:
    """Each code dim binned into ``num_bins`` equal-width bins over its own range."""
    out = np.empty(codes.shape, dtype=np.int64)
    for d, column in enumerate(codes.T):
        edges = np.histogram_bin_edges(column, bins=num_bins)
        out[:, d] = np.digitize(column, edges[1:-1])
    return out
