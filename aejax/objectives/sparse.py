"""Sparse autoencoders: the reconstruction loss plus a penalty on the code's activations.

The code layer (`config.code_activation`, typically a single hidden layer, which
may be overcomplete: latent_dim > pixels) is the representation kept sparse:

* "sparse_l1": λ · Σ_j |a_j| per image (ReLU codes reach exact zeros);
* "sparse_kl": λ · Σ_j KL(ρ ‖ ρ̂_j) with ρ̂_j the mean activation of unit j over
  the batch and KL between Bernoulli(ρ) and Bernoulli(ρ̂_j):
  ρ log(ρ/ρ̂_j) + (1−ρ) log((1−ρ)/(1−ρ̂_j)). Needs activations in (0, 1): sigmoid.

λ = `sparsity_weight`, ρ = `sparsity_target`. Nats per image plus the penalty,
batch mean. Metrics: `mean_activation` and `active_fraction` (activations above
`active_threshold`).
"""
from __future__ import annotations

import jax.numpy as jnp

from aejax.core.errors import ConfigError
from aejax.core.options import Option, non_negative, number, probability
from aejax.objectives.ae import autoencoder_variant, reconstruction_terms
from aejax.objectives.likelihoods import reconstruction_metrics


def l1_penalty(code, config):
    """Σ_j |a_j|, averaged over the batch."""
    del config
    return jnp.mean(jnp.sum(jnp.abs(code), axis=-1))


def kl_sparsity_penalty(code, config):
    """Σ_j KL(Bernoulli(ρ) ‖ Bernoulli(ρ̂_j)), ρ̂_j = batch mean of a_j."""
    rho = config.sparsity_target
    rho_hat = jnp.clip(jnp.mean(code, axis=0), 1e-6, 1 - 1e-6)
    return jnp.sum(rho * jnp.log(rho / rho_hat) + (1 - rho) * jnp.log((1 - rho) / (1 - rho_hat)))


def make_sparse_loss(penalty, requires_unit_interval: bool):

    def make_loss(model, config):
        if requires_unit_interval and config.code_activation != "sigmoid":
            raise ConfigError(f"model {config.model!r} needs code activations in (0, 1): "
                              "set config.code_activation='sigmoid'")
        if not 0 < config.sparsity_target < 1:
            raise ConfigError(f"config.sparsity_target={config.sparsity_target!r} must be in (0, 1)")
        weight, threshold = config.sparsity_weight, config.active_threshold

        def loss_fn(params, batch, key, step):
            del key, step
            x = batch["image"]
            reconstruction, code, x_mean = reconstruction_terms(model, config, params, x)
            sparsity = penalty(code, config)
            loss = jnp.mean(reconstruction) + weight * sparsity
            return loss, {"loss": loss, "reconstruction": jnp.mean(reconstruction),
                          "sparsity_penalty": sparsity, "mean_activation": jnp.mean(code),
                          "active_fraction": jnp.mean(code > threshold),
                          **reconstruction_metrics(x_mean, x)}

        return loss_fn

    return make_loss


OPTIONS = {
    "sparsity_weight": Option(0.2, non_negative, "λ of the sparsity penalty"),
    "sparsity_target": Option(0.05, probability, "ρ, the target mean activation (sparse_kl)"),
    "active_threshold": Option(0.0, number, "a unit counts as active when its activation exceeds this"),
}

VARIANTS = (
    autoencoder_variant("sparse_l1", make_sparse_loss(l1_penalty, requires_unit_interval=False), options=OPTIONS),
    autoencoder_variant("sparse_kl", make_sparse_loss(kl_sparsity_penalty, requires_unit_interval=True),
                        options=OPTIONS),
)
