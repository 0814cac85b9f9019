"""A full-covariance Gaussian mixture as plain arrays: its density and samples in jax, and its file.

    p(z) = Σ_k π_k N(z; μ_k, Σ_k)

The ex-post prior of a deterministic autoencoder (Ghosh et al. 2020): fitted
to its training codes by scikit-learn (aejax.evaluation.ex_post_density), saved
as arrays next to the run (`PRIOR_FILE`), and sampled here with an explicit
key, so `aejax.load(workdir).sample(key, n)` needs no scikit-learn.
"""
from __future__ import annotations

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

# Where a run's fitted prior lives, relative to its workdir.
PRIOR_FILE = os.path.join("prior", "gmm.npz")


@dataclasses.dataclass(frozen=True)
class GaussianMixture:
    """weights π [K], means μ [K, d], covariances Σ [K, d, d]; `step`: the checkpoint whose codes it fits."""
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    step: int = -1

    @property
    def num_components(self) -> int:
        return int(self.weights.shape[0])


def log_prob(weights, means, covariances, z):
    """log p(z) per row of z [n, d], by each component's Cholesky factor and a logsumexp over k."""
    chol = jnp.linalg.cholesky(covariances)                                    # [K, d, d]
    diff = z[None, :, :] - means[:, None, :]                                   # [K, n, d]
    solved = jax.vmap(lambda l, r: jax.scipy.linalg.solve_triangular(l, r.T, lower=True).T)(chol, diff)
    log_det = 2 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)   # log |Σ_k|
    d = z.shape[-1]
    component = -0.5 * (jnp.sum(jnp.square(solved), axis=-1) + log_det[:, None] + d * math.log(2 * math.pi))
    return jax.nn.logsumexp(component + jnp.log(weights)[:, None], axis=0)


def sample(weights, means, covariances, key, n: int):
    """n draws z = μ_k + L_k ε, k ~ Categorical(π), ε ~ N(0, I), L_k L_kᵀ = Σ_k."""
    component_key, noise_key = jax.random.split(key)
    k = jax.random.categorical(component_key, jnp.log(weights), shape=(n,))
    eps = jax.random.normal(noise_key, (n, means.shape[-1]), means.dtype)
    chol = jnp.linalg.cholesky(covariances)
    return means[k] + jnp.einsum("nij,nj->ni", chol[k], eps)


def load(path: str) -> GaussianMixture:
    with np.load(path) as saved:
        return GaussianMixture(saved["weights"], saved["means"], saved["covariances"], int(saved["step"]))
