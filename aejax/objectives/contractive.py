"""Contractive autoencoder (Rifai et al. 2011): penalise the encoder's sensitivity to its input.

    loss = −log p(x | g(f(x))) + λ · ‖J_f(x)‖²_F,   J_f(x) = ∂f(x)/∂x

f(x) is the code (the hidden activations, `code_activation`, sigmoid in the
classic one-layer CAE). The squared Frobenius norm is computed exactly, per
example, by a method from `JACOBIAN_METHODS` (`config.jacobian_method`):

* "jacfwd": the full Jacobian by forward mode (one JVP per input pixel), vmapped;
* "jacrev": by reverse mode (one VJP per code unit), vmapped;
* "closed_form": for a single sigmoid layer h = σ(xW + b),
  J = diag(h ⊙ (1−h)) Wᵀ, so ‖J‖²_F = Σ_j (h_j(1−h_j))² Σ_i W_ij² — no Jacobian
  is formed (the cheapest by far).

λ = `contractive_weight`. Nats per image plus the penalty, batch mean.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from aejax.core.errors import ConfigError
from aejax.core.options import Option, non_negative, one_of
from aejax.objectives.ae import autoencoder_variant, reconstruction_terms
from aejax.objectives.likelihoods import reconstruction_metrics


def _frobenius_norm_of(jacobian: Callable):
    """‖J_f(x)‖²_F per example, with J from the transform `jacobian` (jax.jacfwd or jax.jacrev)."""

    def squared_norm(model, params, x):
        def code_of_one(image):
            return model.apply(params, image[None], method="encode")[0]
        jacobians = jax.vmap(jacobian(code_of_one))(x)   # [B, latent_dim, H, W, C]
        return jnp.sum(jnp.square(jacobians).reshape(x.shape[0], -1), axis=-1)

    return squared_norm


def _closed_form(model, params, x):
    """Σ_j (h_j(1−h_j))² Σ_i W_ij² for the single sigmoid layer h = σ(xW + b)."""
    h = model.apply(params, x, method="encode")
    kernel = params["params"]["encoder"]["code"]["kernel"]
    return jnp.sum(jnp.square(h * (1 - h)) * jnp.sum(jnp.square(kernel), axis=0), axis=-1)


JACOBIAN_METHODS: dict[str, Callable] = {
    "jacfwd": _frobenius_norm_of(jax.jacfwd),
    "jacrev": _frobenius_norm_of(jax.jacrev),
    "closed_form": _closed_form,
}

OPTIONS = {
    "contractive_weight": Option(0.1, non_negative, "λ of the contractive penalty"),
    "jacobian_method": Option("jacfwd", one_of(JACOBIAN_METHODS), "jacfwd | jacrev | closed_form"),
}


def contractive_penalty(model, params, x, method: str = "jacfwd"):
    """‖J_f(x)‖²_F of the code f(x) w.r.t. the input, one value per example [B]."""
    return JACOBIAN_METHODS[method](model, params, x)


def check_closed_form_applies(config):
    if config.jacobian_method == "closed_form" and (
            config.architecture != "mlp" or tuple(config.hidden_dims)
            or config.code_activation != "sigmoid"):
        raise ConfigError("config.jacobian_method='closed_form' holds for one sigmoid layer only "
                          "(architecture='mlp', hidden_dims=(), code_activation='sigmoid'); "
                          "use 'jacfwd' or 'jacrev' for other encoders")


def make_contractive_loss(model, config):
    check_closed_form_applies(config)
    weight, method = config.contractive_weight, config.jacobian_method

    def loss_fn(params, batch, key, step):
        del key, step
        x = batch["image"]
        reconstruction, _, x_mean = reconstruction_terms(model, config, params, x)
        penalty = jnp.mean(contractive_penalty(model, params, x, method))
        loss = jnp.mean(reconstruction) + weight * penalty
        return loss, {"loss": loss, "reconstruction": jnp.mean(reconstruction),
                      "contractive_penalty": penalty, **reconstruction_metrics(x_mean, x)}

    return loss_fn


VARIANTS = (autoencoder_variant("contractive", make_contractive_loss, options=OPTIONS),)
