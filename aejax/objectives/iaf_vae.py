"""IAF VAE (Kingma et al. 2016): the Gaussian posterior refined by T inverse autoregressive flow steps.

    z_0 = μ(x) + σ(x) ⊙ ε,   z_t = σ_t ⊙ z_{t−1} + (1 − σ_t) ⊙ m_t,   [m_t, s_t] = MADE_t(z_{t−1}, h(x))
    log q(z_T | x) = log N(z_0; μ, σ²) − Σ_t Σ_i log σ_t,i             (σ_t = sigmoid(s_t))

(aejax.models.iaf: masks, the stable update, the order reversal between steps).
With p(z) = N(0, I) the KL term has no closed form; the loss uses the
one-sample Monte Carlo estimate at the same z_T:

    loss = −log p(x | z_T) + β_t · (log q(z_T | x) − log N(z_T; 0, I))

`num_flows` = T (0 is the plain VAE with a Monte Carlo KL); `made_hidden_dims`
the MADE widths. The importance-weighted log p(x) uses log q(z_T | x)
(`Variant.importance_log_weights`). Nats per image, batch means; the reported
`elbo` is the β = 1 bound.
"""
from __future__ import annotations

import jax.numpy as jnp

from aejax import models
from aejax.core.distributions import standard_normal_log_prob
from aejax.core.options import Option, count, rule
from aejax.models.iaf import IAFAutoencoder
from aejax.objectives.likelihoods import learns_decoder_variance, likelihood, reconstruction_metrics
from aejax.objectives.vae import VAE_OPTIONS, kl_weight, vae_variant

OPTIONS = {
    "beta": VAE_OPTIONS["beta"],
    "kl_warmup_steps": VAE_OPTIONS["kl_warmup_steps"],
    "num_flows": Option(2, count, "T, the IAF steps after the Gaussian q(z_0 | x) (0 = none)"),
    "made_hidden_dims": Option((320, 320), rule(
        "a non-empty tuple of positive integers, e.g. (320, 320)",
        lambda v: isinstance(v, (tuple, list)) and len(v) > 0 and all(isinstance(s, int) and s > 0 for s in v)),
        "hidden widths of each IAF step's MADE"),
}


def build_iaf_vae(config, image_shape):
    return IAFAutoencoder(models.build("trunk", config, image_shape), models.build("decoder", config, image_shape),
                          int(config.latent_dim), int(config.num_flows), tuple(config.made_hidden_dims),
                          config.activation, learn_decoder_logvar=learns_decoder_variance(config))


def make_iaf_loss(model, config):
    def loss_fn(params, batch, key, step):
        x = batch["image"]
        out, (z, log_q) = model.apply(params, x, key)
        p_x = likelihood(params, config)
        reconstruction = -p_x.log_prob(out, x)
        kl = log_q - standard_normal_log_prob(z)
        beta_t = kl_weight(config, step)
        loss = jnp.mean(reconstruction) + beta_t * jnp.mean(kl)
        return loss, {"loss": loss, "kl_weight": beta_t, "reconstruction": jnp.mean(reconstruction),
                      "kl": jnp.mean(kl), "elbo": -jnp.mean(reconstruction + kl),
                      **reconstruction_metrics(p_x.mean(out), x)}

    return loss_fn


def iaf_importance_log_weights(model, config, params, x, key, num_samples):
    """log w = log p(x | z_T) + log N(z_T; 0, I) − log q(z_T | x), with log p(x | z_T); each [K, B]."""
    z, log_q = model.apply(params, x, key, num_samples, method="posterior_sample")
    out = model.apply(params, z.reshape(-1, z.shape[-1]), method="decode")
    x_k = jnp.broadcast_to(x, (num_samples, *x.shape)).reshape(out.shape)
    log_px_z = likelihood(params, config).log_prob(out, x_k).reshape(num_samples, -1)
    return log_px_z + standard_normal_log_prob(z) - log_q, log_px_z


VARIANTS = (vae_variant("iaf_vae", make_iaf_loss, OPTIONS, build_model=build_iaf_vae,
                        importance_log_weights=iaf_importance_log_weights),)
