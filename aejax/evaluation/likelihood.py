"""log p(x) of a latent-variable model by importance sampling (Burda et al. 2016).

With K samples z_k ~ q(z | x) and weights

    log w_k = log p(x | z_k) + log p(z_k) − log q(z_k | x),

    log p(x) ≈ log (1/K) Σ_k w_k          (the IWAE bound; ↑ log p(x) as K → ∞)
    ELBO     ≈ (1/K) Σ_k log w_k          (Jensen: never above the line before)

Both are in nats per image (log-densities summed over pixels and latent
dimensions). K may be thousands, so the samples are drawn in chunks and the
logsumexp is accumulated chunk by chunk: memory is bounded by
`samples_per_chunk × batch` decoder outputs, whatever K is. The prior is
p(z) = N(0, I) and q(z | x) a diagonal Gaussian, as for every variant with
`probabilistic_encoder`, unless the variant supplies its own log-weights
(`Variant.importance_log_weights`: a VampPrior, a flow posterior, a hierarchy),
which are then accumulated in the same chunks.

A conditional variant (cvae) is given the int class of each image (`labels=`):
q(z | x, y), p(z) = N(0, I), p(x | z, y), so its estimate is log p(x | y).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from aejax.core.batching import map_batches
from aejax.core.distributions import diagonal_gaussian_log_prob, kl_divergence, standard_normal_log_prob
from aejax.training.progress import Progress

# (z [N, latent], x [N, ...]) -> log p(x | z) [N], nats per image.
DecoderLogProb = Callable[[jax.Array, jax.Array], jax.Array]


# (key, S) -> (log w [S, B], log p(x | z) [S, B]) of S fresh samples z ~ q(z | x) drawn with `key`.
LogWeights = Callable[[jax.Array, int], tuple[jax.Array, jax.Array]]


def chunked_importance_estimates(key: jax.Array, log_weights: LogWeights, num_samples: int, batch: int,
                                 dtype=jnp.float32, samples_per_chunk: int = 100) -> dict[str, jax.Array]:
    """{"log_px", "elbo", "reconstruction"} [B] from `num_samples` log-weights drawn in chunks.

    Chunk c calls `log_weights(fold_in(key, c), chunk)`, so memory is bounded by
    one chunk whatever K is, and the first samples are the same for every K.
    The logsumexp is accumulated chunk by chunk; the last chunk's overhang is
    masked out. Jit-able; `num_samples` and `samples_per_chunk` are static.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be ≥ 1, got {num_samples}")
    chunk = min(samples_per_chunk, num_samples)
    num_chunks = -(-num_samples // chunk)

    def body(carry, c):
        lse, sum_log_w, sum_log_px_z = carry
        log_w, log_px_z = log_weights(jax.random.fold_in(key, c), chunk)
        valid = (c * chunk + jnp.arange(chunk) < num_samples)[:, None]        # the last chunk may overhang
        lse = jnp.logaddexp(lse, jax.nn.logsumexp(jnp.where(valid, log_w, -jnp.inf), axis=0))
        return (lse, sum_log_w + jnp.sum(jnp.where(valid, log_w, 0.0), axis=0),
                sum_log_px_z + jnp.sum(jnp.where(valid, log_px_z, 0.0), axis=0)), None

    init = (jnp.full((batch,), -jnp.inf, dtype), jnp.zeros((batch,), dtype), jnp.zeros((batch,), dtype))
    (lse, sum_log_w, sum_log_px_z), _ = jax.lax.scan(body, init, jnp.arange(num_chunks))
    return {"log_px": lse - math.log(num_samples),
            "elbo": sum_log_w / num_samples,
            "reconstruction": -sum_log_px_z / num_samples}


def importance_weighted_log_likelihood(
        key: jax.Array, x: jax.Array, mean: jax.Array, logvar: jax.Array,
        decoder_log_prob: DecoderLogProb, num_samples: int,
        samples_per_chunk: int = 100) -> dict[str, jax.Array]:
    """Per-example estimates from `num_samples` draws of q(z | x) = N(mean, exp(logvar)), p(z) = N(0, I).

    Returns {"log_px": the K-sample importance-weighted estimate of log p(x),
    "elbo": the mean log weight of the same samples (so log_px ≥ elbo for
    every example), "reconstruction": the mean of −log p(x | z)}, each [B].
    Chunk c uses fold_in(key, c), so the first samples are the same for every
    K (a larger K only adds samples). Jit-able; `num_samples` and
    `samples_per_chunk` are static.
    """
    batch, chunk = mean.shape[0], min(samples_per_chunk, num_samples)
    x_tiled = jnp.broadcast_to(x[None], (chunk, *x.shape)).reshape(chunk * batch, *x.shape[1:])

    def log_weights(chunk_key, chunk):
        eps = jax.random.normal(chunk_key, (chunk, *mean.shape), mean.dtype)
        z = mean + jnp.exp(0.5 * logvar) * eps                               # [S, B, latent]
        log_px_z = decoder_log_prob(z.reshape(chunk * batch, -1), x_tiled).reshape(chunk, batch)
        return log_px_z + standard_normal_log_prob(z) - diagonal_gaussian_log_prob(z, mean, logvar), log_px_z

    return chunked_importance_estimates(key, log_weights, num_samples, batch, mean.dtype, samples_per_chunk)


def model_decoder_log_prob(model, variant, config, params: Any, labels: jax.Array | None = None) -> DecoderLogProb:
    """log p(x | z) of a registered variant: its decoder, then its likelihood.

    With `labels` [B] (a conditional variant), log p(x | z, y): the rows of z are
    S stacked copies of the batch (sample-major), so the labels are tiled S times.
    """
    p_x = variant.likelihood(params, config)

    def log_prob(z, x):
        condition = () if labels is None else (jnp.tile(labels, z.shape[0] // labels.shape[0]),)
        return p_x.log_prob(model.apply(params, z, *condition, method="decode"), x)

    return log_prob


def bits_per_dim(log_prob_nats: float, num_dims: int) -> float:
    """−log p(x) in bits per pixel: the scale-free unit of density papers."""
    return -log_prob_nats / (num_dims * math.log(2.0))


def active_units(posterior_means: np.ndarray, threshold: float) -> tuple[int, np.ndarray]:
    """Burda et al. (2016): dimension d is active if Cov_x(E_q[z_d | x]) > threshold."""
    variance = np.var(np.asarray(posterior_means, np.float64), axis=0)
    return int(np.sum(variance > threshold)), variance


def estimate_in_batches(estimate, x: np.ndarray, *, num_samples: int, batch_size: int, seed: int,
                        labels: np.ndarray | None = None) -> dict:
    """Per-example estimates of `estimate(x batch, key)` over `x`, batch i with fold_in(PRNGKey(seed), i),
    with a progress line. The same keys whatever else is evaluated, so every run (or member) compares.
    With `labels` (a conditional variant), `estimate(x batch, key, labels batch)`."""
    key = jax.random.PRNGKey(seed)
    num_batches = -(-len(x) // batch_size)
    progress = Progress(num_batches, 0, batch_size, unit="batch", description=f"log p(x) with K={num_samples}")
    progress.start(0)
    if labels is None:
        per_example = map_batches(lambda batch, i: estimate(jnp.asarray(batch), jax.random.fold_in(key, i)),
                                  x, batch_size, progress)
    else:  # batches of indices, so each image batch comes with its labels
        indices = np.arange(len(x))
        per_example = map_batches(lambda idx, i: estimate(jnp.asarray(x[idx]), jax.random.fold_in(key, i),
                                                          jnp.asarray(labels[idx], jnp.int32)),
                                  indices, batch_size, progress)
    progress.close()
    return per_example


def variant_estimates(model, variant, config, params: Any, x: jax.Array, key: jax.Array, num_samples: int,
                      samples_per_chunk: int, labels: jax.Array | None = None) -> dict[str, jax.Array]:
    """{"log_px", "elbo", "reconstruction"} [B] of one batch, by importance sampling q(z | x). Jit-able.

    A variant with its own `importance_log_weights` (another prior or
    posterior) supplies the log-weights of each chunk; its estimates also carry
    "kl", the Monte Carlo E_q[log q(z | x) − log p(z)] = −elbo − reconstruction.
    `labels` [B] (a conditional variant): q(z | x, y) and p(x | z, y), so the
    estimates are of log p(x | y).
    """
    if variant.conditional and labels is None:
        raise ValueError(f"model {variant.name!r} is conditional: its log p(x | y) needs labels=")
    condition = (labels,) if variant.conditional else ()  # a conditional variant's hook also gets the labels
    if variant.importance_log_weights is not None:
        out = chunked_importance_estimates(
            key, lambda chunk_key, chunk: variant.importance_log_weights(model, config, params, x, chunk_key, chunk,
                                                                         *condition),
            num_samples, x.shape[0], jnp.float32, samples_per_chunk)
        return {**out, "kl": -out["elbo"] - out["reconstruction"]}
    mean, logvar = model.apply(params, x, *condition, method="encode")
    log_prob = model_decoder_log_prob(model, variant, config, params, *condition)
    return importance_weighted_log_likelihood(key, x, mean, logvar, log_prob, num_samples, samples_per_chunk)


def likelihood_estimates(trained, x: np.ndarray, *, num_samples: int, samples_per_chunk: int, batch_size: int,
                         seed: int, labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """{"log_px", "elbo", "reconstruction"} (and a variant's own "kl") per example of `x`;
    of log p(x | y) for a conditional variant, which needs the int `labels` of `x`."""
    model, variant, config = trained.model, trained.variant, trained.config
    if variant.conditional and labels is None:
        raise ValueError(f"model {variant.name!r} is conditional: its log p(x | y) needs labels=")

    @jax.jit
    def estimate(params, x, key, labels=None):
        return variant_estimates(model, variant, config, params, x, key, num_samples, samples_per_chunk, labels)

    return estimate_in_batches(lambda batch, key, *rest: estimate(trained.params, batch, key, *rest), x,
                               num_samples=num_samples, batch_size=batch_size, seed=seed,
                               labels=labels if variant.conditional else None)


def likelihood_summary(per_example: dict[str, np.ndarray], encoded, image_shape: tuple[int, ...],
                       active_unit_threshold: float) -> tuple[dict, dict]:
    """ELBO, importance-weighted log p(x), KL (total and per dim) and active units, from the per-example
    estimates and the encoder's (mean, logvar).

    With a Monte Carlo "kl" in the estimates (a variant's own prior or
    posterior) that is the KL reported, and there is no per-dimension split.
    An encoder that is not Gaussian (gumbel_vae) gives its point code E_q[z | x]
    (the probabilities of the one-hot z) in place of the (mean, logvar) pair.
    """
    own_kl = "kl" in per_example
    mean, logvar = encoded if isinstance(encoded, (tuple, list)) else (encoded, None)
    kl_per_dim = None if logvar is None else \
        np.mean(np.asarray(kl_divergence(jnp.asarray(mean), jnp.asarray(logvar))), axis=0)
    num_dims = int(np.prod(image_shape))
    elbo, log_px = float(np.mean(per_example["elbo"])), float(np.mean(per_example["log_px"]))
    count, _ = active_units(mean, active_unit_threshold)
    metrics = {"elbo": elbo, "log_px_iw": log_px, "iw_gap": log_px - elbo,
               "bpd_elbo": bits_per_dim(elbo, num_dims), "bpd_iw": bits_per_dim(log_px, num_dims),
               "reconstruction_nll": float(np.mean(per_example["reconstruction"])),
               "kl": float(np.mean(per_example["kl"])) if own_kl else float(np.sum(kl_per_dim)),
               "active_units": count}
    return metrics, {} if own_kl else {"kl": kl_per_dim.tolist()}
