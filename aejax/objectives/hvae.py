"""Two-stochastic-layer VAE (the IWAE paper's model, Burda et al. 2016), trained on the ELBO or the IW bound.

    log w = log p(x | z1) + log p(z1 | z2) + log N(z2; 0, I) − log q(z1 | x) − log q(z2 | z1),
            z1 ~ q(z1 | x), z2 ~ q(z2 | z1)
    L_K   = log (1/K) Σ_k w_k         (K = `iw_train_samples`; K = 1 is the one-sample ELBO)

No KL is analytic here (p(z1 | z2) depends on a sample), so every term is a
Monte Carlo estimate at the same samples. The reported `kl` is
E[log q(z1, z2 | x) − log p(z1, z2)] = E[log p(x | z1) − log w], the rate of
both layers together. The importance-weighted log p(x) draws the same
log-weights (`Variant.importance_log_weights`), and sampling goes down the
hierarchy: z2 ~ N(0, I), z1 ~ p(z1 | z2), decode(z1). Nats per image, batch means.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from aejax import models
from aejax.core.distributions import diagonal_gaussian_log_prob, standard_normal_log_prob
from aejax.core.options import Option, positive_integer, sizes
from aejax.models.autoencoders import GaussianEncoder
from aejax.models.hierarchical import TwoLayerVAE
from aejax.models.mlp import MLPTrunk
from aejax.objectives.likelihoods import learns_decoder_variance, likelihood, reconstruction_metrics
from aejax.objectives.vae import importance_weighted_bound, vae_variant

OPTIONS = {
    "latent_dim_2": Option(50, positive_integer, "size of the top layer z2 (latent_dim is z1's)"),
    "hidden_dims_2": Option((100, 100), sizes, "MLP widths of q(z2 | z1) and p(z1 | z2)"),
    "iw_train_samples": Option(1, positive_integer, "K of the training bound: 1 = the ELBO, K > 1 the IWAE bound"),
}


def build_hvae(config, image_shape):
    def gaussian(hidden_dims, dim):
        return GaussianEncoder(MLPTrunk(tuple(hidden_dims), config.activation, models.dtype(config)), dim)

    return TwoLayerVAE(GaussianEncoder(models.build("trunk", config, image_shape), int(config.latent_dim)),
                       gaussian(config.hidden_dims_2, int(config.latent_dim_2)),
                       gaussian(config.hidden_dims_2, int(config.latent_dim)),
                       models.build("decoder", config, image_shape),
                       learn_decoder_logvar=learns_decoder_variance(config))


def log_weights_given(model, config, params, x, z1, z2):
    """(log w, log p(x | z1), p(x | z1)'s raw output) at given samples z1 [K, B, D1], z2 [K, B, D2]; [K, B]."""
    num_samples, batch = z1.shape[:2]
    flat1, flat2 = z1.reshape(num_samples * batch, -1), z2.reshape(num_samples * batch, -1)
    mean1, logvar1 = model.apply(params, x, method="encode")
    mean2, logvar2 = model.apply(params, flat1, method="infer_top")
    prior_mean1, prior_logvar1 = model.apply(params, flat2, method="prior_middle")
    out = model.apply(params, flat1, method="decode")
    x_k = jnp.broadcast_to(x, (num_samples, *x.shape)).reshape(out.shape)
    log_px_z1 = likelihood(params, config).log_prob(out, x_k).reshape(num_samples, batch)
    log_p = (log_px_z1 + diagonal_gaussian_log_prob(flat1, prior_mean1, prior_logvar1).reshape(num_samples, batch)
             + standard_normal_log_prob(z2))
    log_q = (diagonal_gaussian_log_prob(z1, mean1, logvar1)
             + diagonal_gaussian_log_prob(flat2, mean2, logvar2).reshape(num_samples, batch))
    return log_p - log_q, log_px_z1, out


def sample_posterior(model, params, x, key, num_samples):
    """z1 ~ q(z1 | x), z2 ~ q(z2 | z1): K draws each, [K, B, ·]."""
    bottom_key, top_key = jax.random.split(key)
    mean1, logvar1 = model.apply(params, x, method="encode")
    z1 = mean1 + jnp.exp(0.5 * logvar1) * jax.random.normal(bottom_key, (num_samples, *mean1.shape), mean1.dtype)
    mean2, logvar2 = model.apply(params, z1.reshape(-1, z1.shape[-1]), method="infer_top")
    z2 = mean2 + jnp.exp(0.5 * logvar2) * jax.random.normal(top_key, mean2.shape, mean2.dtype)
    return z1, z2.reshape(*z1.shape[:2], -1)


def hvae_importance_log_weights(model, config, params, x, key, num_samples):
    """log w and log p(x | z1) [K, B] at K fresh draws of q(z1 | x) q(z2 | z1)."""
    z1, z2 = sample_posterior(model, params, x, key, num_samples)
    log_w, log_px_z1, _ = log_weights_given(model, config, params, x, z1, z2)
    return log_w, log_px_z1


def make_hvae_loss(model, config):
    num_samples = int(config.iw_train_samples)

    def loss_fn(params, batch, key, step):
        del step
        x = batch["image"]
        z1, z2 = sample_posterior(model, params, x, key, num_samples)
        log_w, log_px_z1, out = log_weights_given(model, config, params, x, z1, z2)
        bound = jnp.mean(importance_weighted_bound(log_w))
        first = out[:x.shape[0]]
        return -bound, {"loss": -bound, "iw_bound": bound, "elbo": jnp.mean(log_w),
                        "reconstruction": -jnp.mean(log_px_z1), "kl": jnp.mean(log_px_z1 - log_w),
                        **reconstruction_metrics(likelihood(params, config).mean(first), x)}

    return loss_fn


def sample_hierarchy(model, config, params, key, n):
    """z1 ~ p(z1 | z2) with z2 ~ N(0, I): the codes `decode` takes."""
    top_key, bottom_key = jax.random.split(key)
    z2 = jax.random.normal(top_key, (n, int(config.latent_dim_2)))
    mean1, logvar1 = model.apply(params, z2, method="prior_middle")
    return mean1 + jnp.exp(0.5 * logvar1) * jax.random.normal(bottom_key, mean1.shape, mean1.dtype)


VARIANTS = (vae_variant("hvae", make_hvae_loss, OPTIONS, build_model=build_hvae,
                        sample_learned_prior=sample_hierarchy, importance_log_weights=hvae_importance_log_weights),)
