"""VampPrior VAE (Tomczak & Welling 2018): the prior is a mixture of the encoder's posteriors at learned pseudo-inputs.

    p_λ(z) = (1/K) Σ_k q(z | u_k),        u_1..u_K learned, image-shaped

The optimal prior for the ELBO is the aggregate posterior (1/N) Σ_n q(z | x_n);
the VampPrior approximates it with K ≪ N pseudo-inputs. The KL term has no
closed form, so it is the one-sample Monte Carlo estimate at z ~ q(z | x):

    KL ≈ log q(z | x) − log p_λ(z),   log p_λ(z) = logsumexp_k log N(z; μ(u_k), σ²(u_k)) − log K
    loss = −log p(x | z) + β_t · (log q(z | x) − log p_λ(z))

with β_t the VAE's β and optional linear warm-up (the paper warms up over 100
epochs). Sampling picks a component k uniformly and draws z ~ q(z | u_k); the
importance-weighted log p(x) uses the same log p_λ(z)
(`Variant.importance_log_weights`). Nats per image, batch means; the reported
`elbo` is the β = 1 bound.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from aejax import models
from aejax.core.distributions import diagonal_gaussian_log_prob, gaussian_log_prob
from aejax.core.options import Option, positive_integer
from aejax.models.autoencoders import GaussianEncoder
from aejax.models.vamp_prior import VampPriorAutoencoder
from aejax.objectives.likelihoods import learns_decoder_variance, likelihood, reconstruction_metrics
from aejax.objectives.vae import VAE_OPTIONS, kl_weight, vae_variant

OPTIONS = {
    "beta": VAE_OPTIONS["beta"],
    "kl_warmup_steps": VAE_OPTIONS["kl_warmup_steps"],
    "num_pseudo_inputs": Option(500, positive_integer, "K pseudo-inputs of the VampPrior (the paper: 500)"),
}


def build_vamp_prior_vae(config, image_shape):
    encoder = GaussianEncoder(models.build("trunk", config, image_shape), config.latent_dim)
    return VampPriorAutoencoder(encoder, models.build("decoder", config, image_shape),
                                int(config.num_pseudo_inputs), tuple(image_shape),
                                learn_decoder_logvar=learns_decoder_variance(config))


def mixture_log_prob(z, means, logvars):
    """log (1/K) Σ_k N(z; μ_k, diag σ²_k) for z [..., D] and components [K, D]; shape [...]."""
    log_components = jnp.sum(gaussian_log_prob(z[..., None, :], means, logvars), axis=-1)   # [..., K]
    return jax.nn.logsumexp(log_components, axis=-1) - math.log(means.shape[0])


def make_vamp_prior_loss(model, config):
    def loss_fn(params, batch, key, step):
        x = batch["image"]
        out, (mean, logvar, z) = model.apply(params, x, key)
        prior_means, prior_logvars = model.apply(params, method="prior_components")
        p_x = likelihood(params, config)
        reconstruction = -p_x.log_prob(out, x)
        kl = diagonal_gaussian_log_prob(z, mean, logvar) - mixture_log_prob(z, prior_means, prior_logvars)
        beta_t = kl_weight(config, step)
        loss = jnp.mean(reconstruction) + beta_t * jnp.mean(kl)
        return loss, {"loss": loss, "kl_weight": beta_t, "reconstruction": jnp.mean(reconstruction),
                      "kl": jnp.mean(kl), "elbo": -jnp.mean(reconstruction + kl),
                      **reconstruction_metrics(p_x.mean(out), x)}

    return loss_fn


def sample_vamp_prior(model, config, params, key, n):
    """z ~ p_λ: a component k uniform on 1..K, then z ~ q(z | u_k)."""
    del config
    prior_means, prior_logvars = model.apply(params, method="prior_components")
    pick_key, noise_key = jax.random.split(key)
    k = jax.random.randint(pick_key, (n,), 0, prior_means.shape[0])
    eps = jax.random.normal(noise_key, (n, prior_means.shape[1]), prior_means.dtype)
    return prior_means[k] + jnp.exp(0.5 * prior_logvars[k]) * eps


def vamp_importance_log_weights(model, config, params, x, key, num_samples):
    """log w = log p(x | z) + log p_λ(z) − log q(z | x) at z ~ q(z | x), with log p(x | z); each [K, B]."""
    mean, logvar = model.apply(params, x, method="encode")
    prior_means, prior_logvars = model.apply(params, method="prior_components")
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, (num_samples, *mean.shape), mean.dtype)
    out = model.apply(params, z.reshape(-1, mean.shape[-1]), method="decode")
    x_k = jnp.broadcast_to(x, (num_samples, *x.shape)).reshape(out.shape)
    log_px_z = likelihood(params, config).log_prob(out, x_k).reshape(num_samples, -1)
    log_w = log_px_z + mixture_log_prob(z, prior_means, prior_logvars) - diagonal_gaussian_log_prob(z, mean, logvar)
    return log_w, log_px_z


VARIANTS = (vae_variant("vamp_prior", make_vamp_prior_loss, OPTIONS, build_model=build_vamp_prior_vae,
                        sample_learned_prior=sample_vamp_prior,
                        importance_log_weights=vamp_importance_log_weights),)
