"""Variational autoencoder: the negative ELBO with β weighting, and its options.

    ELBO(x) = E_q[log p(x | z)] − KL(q(z | x) ‖ p(z))
    loss    = −E_q[log p(x | z)] + β_t · Σ_d max(λ, E_batch KL_d)

β = 1 is the VAE of Kingma & Welling (2013); β > 1 is the β-VAE of Higgins et
al. (2017). Options (config keys, all off by default):

* KL warm-up (`kl_warmup_steps`): β_t = β · min(1, t / kl_warmup_steps), from 0
  at step 0 (Bowman et al. 2016, Sønderby et al. 2016).
* Free bits (`free_bits` = λ nats): the KL of each latent dimension, averaged
  over the batch, counts as at least λ (Kingma et al. 2016), so dimensions
  below the floor are not pushed further towards the prior. λ = 0 is the plain
  KL.
* A Gaussian decoder with a fixed (`likelihood="gaussian"`, `decoder_logvar`)
  or learned (`likelihood="gaussian_learned"`: a scalar log σ² parameter of
  the model) variance.

The importance-weighted bound (Burda et al. 2016), model "iwae", trains on

    L_K(x) = log (1/K) Σ_k p(x, z_k) / q(z_k | x),   z_k ~ q(z | x),

computed with logsumexp; L_1 is the single-sample ELBO estimate and
E[L_K] rises with K towards log p(x).

All terms are in nats per image (summed over pixels and latent dimensions),
averaged over the batch. The reported `elbo` is always the β = 1 bound, so
runs with different β are comparable.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from aejax import models
from aejax.core.distributions import diagonal_gaussian_log_prob, kl_divergence, standard_normal_log_prob
from aejax.core.options import Option, non_negative, positive_integer
from aejax.core.variant import Variant
from aejax.models.autoencoders import GaussianEncoder, VariationalAutoencoder
from aejax.objectives.likelihoods import learns_decoder_variance, likelihood, reconstruction_metrics


def build_vae(config, image_shape):
    encoder = GaussianEncoder(models.build("trunk", config, image_shape), config.latent_dim)
    return VariationalAutoencoder(encoder, models.build("decoder", config, image_shape),
                                  learn_decoder_logvar=learns_decoder_variance(config))


def negative_elbo_terms(model, config, params, x, key):
    """Per-example reconstruction NLL and per-dimension KL for one z ~ q(z | x)."""
    out, (mean, logvar, _) = model.apply(params, x, key)
    p_x = likelihood(params, config)
    reconstruction = -p_x.log_prob(out, x)
    return out, reconstruction, kl_divergence(mean, logvar), p_x


def kl_weight(config, step):
    """β_t: β, or β · min(1, step / kl_warmup_steps) during a KL warm-up.

    Written without Python branches on β or the warm-up length, so a population
    of runs can pass them as traced per-member numbers (aejax.training.population).
    """
    beta, warmup = config.beta, config.get("kl_warmup_steps", 0)
    ramp = jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / jnp.maximum(warmup, 1))
    return jnp.where(jnp.asarray(warmup) > 0, beta * ramp, jnp.asarray(beta, jnp.float32))


def free_bits_kl(kl_per_dim, free_bits: float):
    """Σ_d max(λ, mean over the batch of KL_d): the KL term with a floor of λ nats per dimension."""
    return jnp.sum(jnp.maximum(free_bits, jnp.mean(kl_per_dim, axis=0)))


def elbo_metrics(reconstruction, kl_per_dim, mean_image, x):
    """What every VAE-family loss reports: the β = 1 ELBO and its terms (nats per image, batch mean)."""
    kl = jnp.sum(kl_per_dim, axis=-1)
    return {
        "reconstruction": jnp.mean(reconstruction),
        "kl": jnp.mean(kl),
        "elbo": -jnp.mean(reconstruction + kl),
        "kl_per_dim": jnp.mean(kl_per_dim, axis=0),
        **reconstruction_metrics(mean_image, x),
    }


def make_negative_elbo(model, config):
    free_bits = config.get("free_bits", 0.0)

    def loss_fn(params, batch, key, step):
        x = batch["image"]
        out, reconstruction, kl_per_dim, p_x = negative_elbo_terms(model, config, params, x, key)
        beta_t = kl_weight(config, step)
        loss = jnp.mean(reconstruction) + beta_t * free_bits_kl(kl_per_dim, free_bits)
        return loss, {"loss": loss, "kl_weight": beta_t,
                      **elbo_metrics(reconstruction, kl_per_dim, p_x.mean(out), x)}

    return loss_fn


def importance_log_weights(model, config, params, x, key, num_samples: int):
    """log w_k = log p(x | z_k) + log p(z_k) − log q(z_k | x), shape [K, B].

    z_k = μ + σ ε_k with ε = normal(key, [K, B, latent_dim]).
    """
    mean, logvar = model.apply(params, x, method="encode")
    eps = jax.random.normal(key, (num_samples, *mean.shape), mean.dtype)
    z = mean + jnp.exp(0.5 * logvar) * eps
    flat_z = z.reshape(-1, mean.shape[-1])
    out = model.apply(params, flat_z, method="decode")
    x_k = jnp.broadcast_to(x, (num_samples, *x.shape)).reshape(out.shape)
    p_x = likelihood(params, config)
    log_px_given_z = p_x.log_prob(out, x_k).reshape(num_samples, -1)
    log_w = log_px_given_z + standard_normal_log_prob(z) - diagonal_gaussian_log_prob(z, mean, logvar)
    return log_w, out[:x.shape[0]], p_x


def importance_weighted_bound(log_w):
    """log (1/K) Σ_k w_k per example, from log-weights [K, B] (stable logsumexp)."""
    return jax.scipy.special.logsumexp(log_w, axis=0) - math.log(log_w.shape[0])


def make_negative_iwae_bound(model, config):
    num_samples = int(config.num_importance_samples)

    def loss_fn(params, batch, key, step):
        del step
        x = batch["image"]
        log_w, first_out, p_x = importance_log_weights(model, config, params, x, key, num_samples)
        bound = jnp.mean(importance_weighted_bound(log_w))
        return -bound, {"loss": -bound, "iwae_bound": bound, "elbo": jnp.mean(log_w),
                        **reconstruction_metrics(p_x.mean(first_out), x)}

    return loss_fn


BETA = Option(1.0, non_negative, "KL weight β (VAE family); TC weight for tcvae")
VAE_OPTIONS = {
    "beta": BETA,
    "kl_warmup_steps": Option(0, non_negative, "β rises linearly from 0 over these steps (0 = off)"),
    "free_bits": Option(0.0, non_negative, "floor λ (nats) on each latent dim's batch-mean KL (0 = off)"),
}
IWAE_OPTIONS = {
    "num_importance_samples": Option(5, positive_integer, "K of the importance-weighted bound"),
}


def vae_variant(name, make_loss, options, build_model=build_vae, **fields) -> Variant:
    """A VAE-family variant: Gaussian q(z|x), z ~ q drawn with the step's key."""
    return Variant(name=name, make_loss=make_loss, options=options, build_model=build_model,
                   likelihood=likelihood, init_inputs=lambda config, x, key: (x, key),
                   probabilistic_encoder=True, generative=True, **fields)


VARIANTS = (vae_variant("vae", make_negative_elbo, VAE_OPTIONS),
            vae_variant("iwae", make_negative_iwae_bound, IWAE_OPTIONS))
