"""Probability building blocks, written as in the source notes.

Conventions (stated once, used everywhere): every log-density is summed over
pixels (or latent dimensions) so that it is in nats per image; batch
reductions are left to the caller.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp


def reparameterize(key: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """z = μ + σ·ε with ε ~ N(0, I): sampling moved off the gradient path."""
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    return mean + jnp.exp(0.5 * logvar) * eps


def kl_divergence(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """KL(N(μ, σ²) ‖ N(0, 1)) per latent dimension: ½(μ² + σ² − log σ² − 1)."""
    return 0.5 * (jnp.square(mean) + jnp.exp(logvar) - logvar - 1.0)


def gaussian_log_prob(x: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """log N(x; μ, σ²), elementwise."""
    return -0.5 * (math.log(2 * math.pi) + logvar + jnp.square(x - mean) * jnp.exp(-logvar))


def standard_normal_log_prob(z: jax.Array) -> jax.Array:
    """log N(z; 0, I) summed over the last axis."""
    return jnp.sum(-0.5 * (math.log(2 * math.pi) + jnp.square(z)), axis=-1)


def diagonal_gaussian_log_prob(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """log q(z | x) for a diagonal Gaussian, summed over the last axis."""
    return jnp.sum(gaussian_log_prob(z, mean, logvar), axis=-1)


# A radial kernel as a function of the squared distance ‖a − b‖² (every kernel here is radial).
Kernel = Callable[[jax.Array], jax.Array]


def rbf_kernel(bandwidth) -> Kernel:
    """k(a, b) = exp(−‖a − b‖² / (2h²)), h = `bandwidth` (characteristic; light tails)."""
    return lambda squared: jnp.exp(-squared / (2.0 * jnp.square(bandwidth)))


def imq_kernel(scales) -> Kernel:
    """k(a, b) = Σ_C C / (C + ‖a − b‖²), the inverse multiquadratics kernel summed over scales C.

    Its heavy tails keep gradients alive for codes far from the prior's mass,
    which is why Tolstikhin et al. (2018) use it for WAE-MMD rather than the RBF.
    """
    return lambda squared: sum(c / (c + squared) for c in scales)


def mmd_unbiased(x: jax.Array, y: jax.Array, kernel: Kernel) -> jax.Array:
    """Unbiased estimate (the U-statistic) of MMD² between samples x [n, d] and y [m, d].

    MMD² = E k(x, x') + E k(y, y') − 2 E k(x, y), each same-sample mean taken
    over the n(n − 1) ordered pairs of distinct points. Zero in expectation iff
    the two distributions are equal when k is characteristic (RBF, IMQ); the
    estimate itself can be slightly negative.
    """
    def gram(a, b):
        return kernel(jnp.sum(jnp.square(a[:, None, :] - b[None, :, :]), axis=-1))

    def within(a):
        k, n = gram(a, a), a.shape[0]
        return (jnp.sum(k) - jnp.trace(k)) / (n * (n - 1))

    return within(x) + within(y) - 2.0 * jnp.mean(gram(x, y))


def mmd_rbf(x: jax.Array, y: jax.Array, bandwidth: float) -> jax.Array:
    """Unbiased MMD² with the RBF kernel of bandwidth h (`mmd_unbiased`, `rbf_kernel`)."""
    return mmd_unbiased(x, y, rbf_kernel(bandwidth))


def flat_pixels(images: jax.Array) -> jax.Array:
    """[N, ...] → [N, D]: per-pixel terms are computed on flat rows, never on image-shaped arrays.

    XLA:CPU vectorises a fused loop along the array's minor axis; an MLP
    decoder's [N, 28, 28, 1] output has a minor axis of 1, which makes every
    elementwise pass over it scalar: exp, log1p and sigmoid ran 4–10× slower
    than over the same values as [N, 784] (tests/core/test_compiled_step.py
    checks the compiled step for such passes). The reshape is free (a bitcast).
    """
    return images.reshape(images.shape[0], -1)


def sum_pixels(values: jax.Array) -> jax.Array:
    """Σ over the pixels of each row of [N, ...] → [N], as a matrix-vector product with ones.

    XLA:CPU's reductions of a [128, 784] array ran ~3× slower than the same sum
    as a matvec (0.10–0.14 ms against 0.03), and the train step has several.
    HIGHEST precision keeps the sum in float32 on every backend (TPUs and
    GPUs would otherwise multiply float32 in bf16 or tf32). Equal to jnp.sum up
    to the order of the additions.
    """
    flat = flat_pixels(values)
    return jnp.dot(flat, jnp.ones(flat.shape[-1], flat.dtype), precision=jax.lax.Precision.HIGHEST)


def mean_pixels(values: jax.Array) -> jax.Array:
    """The mean over the pixels of each row of [N, ...] → [N] (`sum_pixels` / D)."""
    return sum_pixels(values) / math.prod(values.shape[1:])


@dataclasses.dataclass(frozen=True)
class Likelihood:
    """p(x | z) given the decoder's raw output.

    `log_prob(out, x)` is in nats per image; `mean(out)` is the image the decoder
    predicts (what a figure shows); `sample(key, out)` draws x ~ p(x | z).
    """
    name: str
    log_prob: Callable[[jax.Array, jax.Array], jax.Array]
    mean: Callable[[jax.Array], jax.Array]
    sample: Callable[[jax.Array, jax.Array], jax.Array]


def _softplus(logits):
    # log(1 + e^l) = max(l, 0) + log1p(e^−|l|): stable, and on CPU several times
    # cheaper than jax.nn.softplus (logaddexp's extra selects), the step's largest
    # elementwise cost.
    return jnp.maximum(logits, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(logits)))


def _bernoulli_log_prob(logits, x):
    # x·log σ(l) + (1−x)·log(1−σ(l)), written stably as x·l − softplus(l).
    logits, x = flat_pixels(logits), flat_pixels(x)
    return sum_pixels(x * logits - _softplus(logits))


def gaussian_likelihood(logvar: jax.Array | float) -> Likelihood:
    """A Gaussian p(x | z) with a fixed or learned (scalar or per-pixel) log-variance."""
    logvar = jnp.asarray(logvar)

    def log_prob(mean, x):
        pixel_logvar = flat_pixels(jnp.broadcast_to(logvar, mean.shape))
        return sum_pixels(gaussian_log_prob(flat_pixels(x), flat_pixels(mean), pixel_logvar))

    def sample(key, mean):
        return mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape, mean.dtype)

    return Likelihood("gaussian", log_prob, lambda mean: mean, sample)


BERNOULLI = Likelihood(
    "bernoulli", _bernoulli_log_prob, jax.nn.sigmoid,
    lambda key, logits: jax.random.bernoulli(key, jax.nn.sigmoid(logits)).astype(logits.dtype))
