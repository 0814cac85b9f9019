"""Categorical VAE with the Gumbel-softmax relaxation (Jang et al. 2017; Maddison et al. 2017's Concrete).

N categorical latents c_n ∈ {1..K} (`num_categorical` × `num_categories`),
q(c_n | x) = softmax(logits_n(x)), prior p(c_n) uniform. A one-hot sample
argmax_k(log π_k + g_k), g_k ~ Gumbel(0, 1), has no gradient; the relaxation

    y_k = softmax((log π_k + g_k) / τ)

is differentiable in π, and tends to that one-hot sample as τ → 0. Training
decodes y; τ follows τ_t = max(τ_min, τ_0 · exp(−r·t)) (`gumbel_temperature`,
`gumbel_min_temperature`, `gumbel_anneal_rate`), written with jnp, without
Python branches on the numbers, so a population can trace them per member.

    loss = −log p(x | y) + β · Σ_n KL(q(c_n | x) ‖ U(K)),
    KL(q ‖ U(K)) = Σ_k q_k log q_k + log K     (closed form)

The evaluation loss decodes exact one-hot samples of q instead of relaxed
ones, so its `elbo` is a single-sample estimate of a true lower bound on
log p(x); the training metric `relaxed_elbo` is the surrogate the gradient
follows. `sample` draws uniform one-hot codes. `python -m aejax.evaluate`
estimates log p(x) = log Σ_c p(x | c) p(c) by importance sampling with exact
one-hot samples of q (`gumbel_importance_log_weights`).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from aejax import models
from aejax.core.options import Option, non_negative, positive, positive_integer
from aejax.core.variant import Variant
from aejax.models.categorical import CategoricalVAE
from aejax.objectives.likelihoods import likelihood, reconstruction_metrics
from aejax.objectives.vae import BETA, kl_weight


def build_gumbel_vae(config, image_shape):
    return CategoricalVAE(models.build("trunk", config, image_shape), models.build("decoder", config, image_shape),
                          config.num_categorical, config.num_categories)


def temperature(config, step):
    """τ_t = max(τ_min, τ_0 · exp(−r · t))."""
    t = jnp.asarray(step, jnp.float32)
    return jnp.maximum(config.gumbel_min_temperature,
                       config.gumbel_temperature * jnp.exp(-config.gumbel_anneal_rate * t))


def gumbel_softmax(key, log_probs, tau):
    """y = softmax((log π + g) / τ), g ~ Gumbel(0, 1) i.i.d.: one relaxed one-hot per row of the last axis."""
    g = jax.random.gumbel(key, log_probs.shape, log_probs.dtype)
    return jax.nn.softmax((log_probs + g) / tau, axis=-1)


def categorical_sample(key, log_probs):
    """An exact one-hot sample argmax_k(log π_k + g_k) (the Gumbel-max trick)."""
    g = jax.random.gumbel(key, log_probs.shape, log_probs.dtype)
    return jax.nn.one_hot(jnp.argmax(log_probs + g, axis=-1), log_probs.shape[-1], dtype=log_probs.dtype)


def kl_to_uniform(log_probs):
    """KL(q ‖ U(K)) = Σ_k q_k log q_k + log K, per categorical variable ([..., N])."""
    return jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1) + math.log(log_probs.shape[-1])


def _terms(model, config, params, x, codes):
    """Per-example −log p(x | codes), the decoder output and its likelihood; codes [B, N, K]."""
    out = model.apply(params, codes.reshape(x.shape[0], -1), method="decode")
    p_x = likelihood(params, config)
    return -p_x.log_prob(out, x), out, p_x


def make_relaxed_loss(model, config):

    def loss_fn(params, batch, key, step):
        x = batch["image"]
        log_q = model.apply(params, x, method="logits")
        tau = temperature(config, step)
        reconstruction, out, p_x = _terms(model, config, params, x, gumbel_softmax(key, log_q, tau))
        kl = jnp.sum(kl_to_uniform(log_q), axis=-1)
        beta_t = kl_weight(config, step)
        loss = jnp.mean(reconstruction) + beta_t * jnp.mean(kl)
        return loss, {"loss": loss, "reconstruction": jnp.mean(reconstruction), "kl": jnp.mean(kl),
                      "relaxed_elbo": -jnp.mean(reconstruction + kl), "temperature": tau, "kl_weight": beta_t,
                      **reconstruction_metrics(p_x.mean(out), x)}

    return loss_fn


def make_discrete_eval_loss(model, config):
    """The ELBO with exact one-hot samples of q (a true bound), at β = 1."""

    def loss_fn(params, batch, key, step):
        del step
        x = batch["image"]
        log_q = model.apply(params, x, method="logits")
        reconstruction, out, p_x = _terms(model, config, params, x, categorical_sample(key, log_q))
        kl = jnp.sum(kl_to_uniform(log_q), axis=-1)
        elbo = -jnp.mean(reconstruction + kl)
        return -elbo, {"loss": -elbo, "elbo": elbo, "reconstruction": jnp.mean(reconstruction), "kl": jnp.mean(kl),
                       **reconstruction_metrics(p_x.mean(out), x)}

    return loss_fn


def gumbel_importance_log_weights(model, config, params, x, key, num_samples):
    """(log w, log p(x | c)), each [S, B], at S exact one-hot samples c ~ q(c | x) (Gumbel-max):

        log w = log p(x | c) + log p(c) − log q(c | x),   log p(c) = −N log K (uniform),
        log q(c | x) = Σ_n log q(c_n | x)

    so the importance-weighted log p(x) (aejax.evaluation.likelihood) is that of
    the discrete model the evaluation loss bounds, not of the relaxation.
    """
    log_q = model.apply(params, x, method="logits")                                   # [B, N, K]
    codes = categorical_sample(key, jnp.broadcast_to(log_q, (num_samples, *log_q.shape)))  # [S, B, N, K]
    batch, (n, k) = x.shape[0], log_q.shape[1:]
    out = model.apply(params, codes.reshape(num_samples * batch, n * k), method="decode")
    x_s = jnp.broadcast_to(x[None], (num_samples, *x.shape)).reshape(num_samples * batch, *x.shape[1:])
    log_px_c = likelihood(params, config).log_prob(out, x_s).reshape(num_samples, batch)
    log_q_c = jnp.sum(codes * log_q, axis=(-2, -1))
    return log_px_c - n * math.log(k) - log_q_c, log_px_c


def sample_prior(config, key, n):
    """n codes of N uniform one-hot vectors, flattened to [n, N·K]."""
    classes = jax.random.randint(key, (n, config.num_categorical), 0, config.num_categories)
    return jax.nn.one_hot(classes, config.num_categories).reshape(n, -1)


OPTIONS = {
    "beta": BETA,
    "num_categorical": Option(30, positive_integer, "N: categorical latent variables (gumbel_vae)"),
    "num_categories": Option(10, positive_integer, "K: classes of each categorical latent (gumbel_vae)"),
    "gumbel_temperature": Option(1.0, positive, "τ_0: the Gumbel-softmax temperature at step 0"),
    "gumbel_min_temperature": Option(0.5, positive, "τ_min: the temperature is annealed down to this"),
    "gumbel_anneal_rate": Option(1e-4, non_negative, "r of τ_t = max(τ_min, τ_0·exp(−r·t)); 0 = constant τ_0"),
}

VARIANTS = (Variant(name="gumbel_vae", build_model=build_gumbel_vae, make_loss=make_relaxed_loss,
                    likelihood=likelihood, init_inputs=lambda config, x, key: (x,), options=OPTIONS,
                    make_eval_loss=make_discrete_eval_loss, generative=True, sample_prior=sample_prior,
                    importance_log_weights=gumbel_importance_log_weights),)
