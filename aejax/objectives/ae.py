"""Deterministic autoencoder: minimise −log p(x | x̂) with x̂ = g(f(x)).

With a Bernoulli likelihood this is the pixel cross-entropy; with a unit
variance Gaussian it is ½‖x − x̂‖² (+ const), i.e. the squared error whose
optimum for a linear AE is the PCA subspace. Nats per image, batch mean.
"""
from __future__ import annotations

import jax.numpy as jnp

from aejax import models, registry
from aejax.models.autoencoders import Autoencoder
from aejax.objectives.likelihoods import likelihood, reconstruction_metrics


def build_autoencoder(config, image_shape):
    return Autoencoder(models.build("encoder", config, image_shape),
                       models.build("decoder", config, image_shape))


def make_reconstruction_loss(model, config):

    def loss_fn(params, batch, key, step):
        del key, step
        x = batch["image"]
        out, _ = model.apply(params, x)
        p_x = likelihood(params, config)
        reconstruction = -p_x.log_prob(out, x)
        loss = jnp.mean(reconstruction)
        return loss, {"loss": loss, "reconstruction": loss,
                      **reconstruction_metrics(p_x.mean(out), x)}

    return loss_fn


registry.register(registry.Variant(
    name="ae",
    build_model=build_autoencoder,
    make_loss=make_reconstruction_loss,
    likelihood=likelihood,
    init_inputs=lambda config, x, key: (x,),
))
