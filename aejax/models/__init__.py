"""Encoders, decoders and the autoencoder modules that combine them."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from aejax.models import mlp

# Architecture name -> builders of (encoder trunk, deterministic encoder, decoder).
# A trunk maps images to hidden features (a Gaussian or other head goes on top);
# an encoder maps images to a `latent_dim` code; a decoder maps codes to
# image-shaped raw outputs. New architectures (conv, ...) add an entry.
Builder = Callable[[ml_collections.ConfigDict, tuple[int, ...]], nn.Module]

# `config.dtype`: what the matmuls compute in (params and outputs stay float32).
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def dtype(config):
    return DTYPES[config.get("dtype", "float32")]


def _mlp_trunk(config, image_shape):
    del image_shape
    return mlp.MLPTrunk(tuple(config.hidden_dims), config.activation, dtype(config))


def _mlp_encoder(config, image_shape):
    del image_shape
    return mlp.MLPEncoder(tuple(config.hidden_dims), config.latent_dim, config.activation,
                          dtype(config))


def _mlp_decoder(config, image_shape):
    hidden = config.get("decoder_hidden_dims") or tuple(reversed(tuple(config.hidden_dims)))
    return mlp.MLPDecoder(tuple(hidden), tuple(image_shape), config.activation, dtype(config))


ARCHITECTURES: dict[str, dict[str, Builder]] = {
    "mlp": {"trunk": _mlp_trunk, "encoder": _mlp_encoder, "decoder": _mlp_decoder},
}


def build(part: str, config: ml_collections.ConfigDict, image_shape) -> nn.Module:
    """The `part` ('trunk', 'encoder' or 'decoder') of `config.architecture`."""
    return ARCHITECTURES[config.architecture][part](config, tuple(image_shape))
