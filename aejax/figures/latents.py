"""Figures of the latent space: the manifold, traversals and interpolations of a trained model.

The latent grid of a generative variant is the inverse CDF of its prior N(0, I),
that of any other variant the inverse empirical CDF of its test codes (a
deterministic code has no prior, and 0 need not be a typical code). `trained` is
anything with `decode(z)` and `variant.generative` (a TrainedModel).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from aejax.core.batching import map_batches
from aejax.figures.grids import image_grid, label_rows

# Probabilities of the latent grid: evenly spaced, then mapped through an inverse CDF.
GRID_PROBABILITIES = (0.05, 0.95)


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
    return map_batches(lambda batch, i: trained.decode(batch), z.astype(np.float32), batch_size)


def manifold_grid(trained, codes: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Decodings over a size × size grid of the two most active latent dims, the others at the centre."""
    first, second = (0, 1) if codes.shape[1] == 2 else tuple(int(d) for d in dims_by_activity(codes)[:2])
    rows, cols = latent_values(trained, codes, second, size)[::-1], latent_values(trained, codes, first, size)
    z = np.tile(latent_centre(trained, codes), (size * size, 1))
    z[:, first] = np.tile(cols, size)
    z[:, second] = np.repeat(rows, size)   # top row = largest value, like a y axis
    return image_grid(decode_images(trained, z), size, pad=0), (first, second)


def traversal_grid(trained, codes: np.ndarray, code: np.ndarray, steps: int, max_dims: int,
                   kl_per_dim: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row d: `code` with latent d swept over its CDF grid (most active dims first).

    Each row is labelled with its dim (``z_3``) and, given `kl_per_dim` (the VAE
    family's mean KL(q(z_d|x) ‖ N(0, 1)) over the test set), that dim's KL in nats.
    """
    dims = dims_by_activity(codes)[:max_dims]
    z = np.tile(code, (len(dims) * steps, 1)).astype(np.float32)
    for row, dim in enumerate(dims):
        z[row * steps:(row + 1) * steps, dim] = latent_values(trained, codes, dim, steps)
    decoded = decode_images(trained, z)
    labels = [f"z_{dim}" + ("" if kl_per_dim is None else f"  KL {kl_per_dim[dim]:.2f}") for dim in dims]
    return label_rows(image_grid(decoded, steps), labels, decoded.shape[1]), dims


def interpolation_grid(trained, images: np.ndarray, codes: np.ndarray, pairs: list[tuple[int, int]],
                       steps: int) -> np.ndarray:
    """Each row: image a, decodings of (1−t)·z_a + t·z_b for t in [0, 1], image b."""
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    z = np.concatenate([(1 - t) * codes[a] + t * codes[b] for a, b in pairs])
    decoded = decode_images(trained, z).reshape(len(pairs), steps, *images.shape[1:])
    rows = [np.concatenate([images[a][None], decoded[i], images[b][None]]) for i, (a, b) in enumerate(pairs)]
    return image_grid(np.concatenate(rows), steps + 2)


def interpolation_pairs(labels: np.ndarray, num_pairs: int) -> list[tuple[int, int]]:
    """The first test image of class c paired with the first of the next class."""
    classes = np.unique(labels)
    firsts = [int(np.argmax(labels == c)) for c in classes]
    if len(firsts) < 2:
        return [(i, i + 1) for i in range(0, 2 * num_pairs, 2)]
    return [(firsts[i % len(firsts)], firsts[(i + 1) % len(firsts)]) for i in range(num_pairs)]
