"""Variational autoencoder: the negative ELBO with β weighting.

    ELBO(x) = E_q[log p(x | z)] − KL(q(z | x) ‖ p(z))
    loss    = −E_q[log p(x | z)] + β · KL(q(z | x) ‖ N(0, I))

β = 1 is the VAE of Kingma & Welling (2013); β > 1 is the β-VAE of Higgins et
al. (2017). All terms are in nats per image (summed over pixels and latent
dimensions), averaged over the batch. The reported `elbo` is always the β = 1
bound, so runs with different β are comparable.
"""
from __future__ import annotations

import jax.numpy as jnp

from aejax import models, registry
from aejax.distributions import kl_divergence
from aejax.models.autoencoders import GaussianEncoder, VariationalAutoencoder
from aejax.objectives.likelihoods import likelihood, reconstruction_metrics


def build_vae(config, image_shape):
    encoder = GaussianEncoder(models.build("trunk", config, image_shape), config.latent_dim)
    return VariationalAutoencoder(encoder, models.build("decoder", config, image_shape))


def negative_elbo_terms(model, config, params, x, key):
    """Per-example reconstruction NLL and per-dimension KL for one z ~ q(z | x)."""
    out, (mean, logvar, _) = model.apply(params, x, key)
    p_x = likelihood(params, config)
    reconstruction = -p_x.log_prob(out, x)
    return out, reconstruction, kl_divergence(mean, logvar), p_x


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
    beta = float(config.beta)

    def loss_fn(params, batch, key, step):
        del step
        x = batch["image"]
        out, reconstruction, kl_per_dim, p_x = negative_elbo_terms(model, config, params, x, key)
        kl = jnp.sum(kl_per_dim, axis=-1)
        loss = jnp.mean(reconstruction + beta * kl)
        return loss, {"loss": loss, **elbo_metrics(reconstruction, kl_per_dim, p_x.mean(out), x)}

    return loss_fn


registry.register(registry.Variant(
    name="vae",
    build_model=build_vae,
    make_loss=make_negative_elbo,
    likelihood=likelihood,
    init_inputs=lambda config, x, key: (x, key),
    probabilistic_encoder=True,
    generative=True,
))
