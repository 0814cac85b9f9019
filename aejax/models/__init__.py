"""Encoders, decoders and the autoencoder modules that combine them, built by architecture name."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from aejax.core.options import Option, merge, one_of, positive_integer, sizes
from aejax.models import conv, initialization, mlp

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
                          dtype(config), code_activation=config.get("code_activation", "linear"))


def _decoder_hidden_dims(config):
    return tuple(config.get("decoder_hidden_dims") or reversed(tuple(config.hidden_dims)))


def _mlp_decoder(config, image_shape):
    return mlp.MLPDecoder(_decoder_hidden_dims(config), tuple(image_shape), config.activation,
                          dtype(config))


def _conv_trunk(config, image_shape):
    del image_shape
    return conv.ConvTrunk(tuple(config.conv_channels), config.conv_kernel_size,
                          tuple(config.hidden_dims), config.activation)


def _conv_encoder(config, image_shape):
    del image_shape
    return conv.ConvEncoder(tuple(config.conv_channels), config.conv_kernel_size,
                            tuple(config.hidden_dims), config.latent_dim, config.activation,
                            code_activation=config.get("code_activation", "linear"))


def _conv_decoder(config, image_shape):
    return conv.ConvDecoder(tuple(config.conv_channels), config.conv_kernel_size,
                            _decoder_hidden_dims(config), tuple(image_shape), config.activation,
                            config.get("conv_upsample", "subpixel"))


ARCHITECTURES: dict[str, dict[str, Builder]] = {
    "mlp": {"trunk": _mlp_trunk, "encoder": _mlp_encoder, "decoder": _mlp_decoder},
    # Strided convs, then `hidden_dims` dense layers; see aejax.models.conv.
    "conv": {"trunk": _conv_trunk, "encoder": _conv_encoder, "decoder": _conv_decoder},
}

OPTIONS = merge({
    "architecture": Option("mlp", one_of(ARCHITECTURES), "network family: mlp | conv"),
    "hidden_dims": Option((400,), sizes, "encoder hidden widths (after the convs for conv)"),
    "decoder_hidden_dims": Option((), sizes, "decoder hidden widths; () = reversed(hidden_dims)"),
    "activation": Option("relu", one_of(mlp.ACTIVATIONS), "hidden activation"),
    "code_activation": Option("linear", one_of(mlp.ACTIVATIONS),
                              "activation of a deterministic code (sparse/contractive: sigmoid)"),
    "latent_dim": Option(20, positive_integer, "code size"),
    "dtype": Option("float32", one_of(DTYPES), "matmul dtype: float32 | bfloat16 (params stay float32)"),
}, conv.OPTIONS, initialization.OPTIONS)


def build(part: str, config: ml_collections.ConfigDict, image_shape) -> nn.Module:
    """The `part` ('trunk', 'encoder' or 'decoder') of `config.architecture`."""
    return ARCHITECTURES[config.architecture][part](config, tuple(image_shape))
