"""Deterministic autoencoders: minimise −log p(x | x̂) with x̂ = g(f(x)).

With a Bernoulli likelihood this is the pixel cross-entropy; with a unit
variance Gaussian it is ½‖x − x̂‖² (+ const), i.e. the squared error whose
optimum for a linear AE is the PCA subspace. Nats per image, batch mean.

Variants here differ only in the model:

* "ae": encoder and decoder from `config.architecture` (mlp, conv).
* "linear_ae": one linear map down to `latent_dim` and one (with a bias, which
  absorbs the data mean) back up; trained on the squared error it spans the
  top-`latent_dim` principal subspace (Baldi & Hornik 1989).
* "stacked_ae": the deep symmetric MLP (e.g. 784-512-256-32-256-512-784);
  with `tied_weights` the decoder uses the transposed encoder kernels.
"""
from __future__ import annotations

import jax.numpy as jnp

from aejax import models
from aejax.core.errors import ConfigError
from aejax.core.options import Option, boolean
from aejax.core.variant import Variant
from aejax.models.autoencoders import Autoencoder
from aejax.models.mlp import MLPDecoder, MLPEncoder, TiedMLPAutoencoder
from aejax.objectives.likelihoods import likelihood, reconstruction_metrics


def build_autoencoder(config, image_shape):
    return Autoencoder(models.build("encoder", config, image_shape),
                       models.build("decoder", config, image_shape))


def build_linear_autoencoder(config, image_shape):
    if tuple(config.hidden_dims) or config.architecture != "mlp":
        raise ConfigError("model 'linear_ae' is one linear layer each way: set config.hidden_dims=() "
                          "and config.architecture='mlp' (or use model 'ae' for a deep one)")
    return Autoencoder(MLPEncoder((), config.latent_dim, "linear"),
                       MLPDecoder((), tuple(image_shape), "linear"))


def build_stacked_autoencoder(config, image_shape):
    if not config.tied_weights:
        return build_autoencoder(config, image_shape)
    if config.architecture != "mlp" or config.get("decoder_hidden_dims"):
        raise ConfigError("config.tied_weights needs a symmetric MLP: architecture='mlp' and "
                          "decoder_hidden_dims=()")
    return TiedMLPAutoencoder(tuple(config.hidden_dims), config.latent_dim, tuple(image_shape),
                              config.activation, config.get("code_activation", "linear"))


def reconstruction_terms(model, config, params, x, inputs=None):
    """Per-example −log p(x | g(f(inputs))), the code f(inputs) and the mean image; inputs default to x."""
    out, code = model.apply(params, x if inputs is None else inputs)
    p_x = likelihood(params, config)
    return -p_x.log_prob(out, x), code, p_x.mean(out)


def make_reconstruction_loss(model, config):

    def loss_fn(params, batch, key, step):
        del key, step
        x = batch["image"]
        reconstruction, _, x_mean = reconstruction_terms(model, config, params, x)
        loss = jnp.mean(reconstruction)
        return loss, {"loss": loss, "reconstruction": loss, **reconstruction_metrics(x_mean, x)}

    return loss_fn


def autoencoder_variant(name, make_loss, build_model=build_autoencoder, **fields) -> Variant:
    """A deterministic-AE variant: z = encode(x), initialised from images alone."""
    return Variant(name=name, build_model=build_model, make_loss=make_loss, likelihood=likelihood,
                   init_inputs=lambda config, x, key: (x,), **fields)


STACKED_OPTIONS = {
    "tied_weights": Option(False, boolean, "stacked_ae: the decoder uses the encoder's kernels transposed"),
}

VARIANTS = (
    autoencoder_variant("ae", make_reconstruction_loss),
    autoencoder_variant("linear_ae", make_reconstruction_loss, build_linear_autoencoder),
    autoencoder_variant("stacked_ae", make_reconstruction_loss, build_stacked_autoencoder,
                        options=STACKED_OPTIONS),
)
