"""Vector-quantised autoencoder modules (van den Oord et al. 2017): a conv grid encoder, a codebook, a decoder.

The encoder keeps space: strided convs (`conv_channels`, stride 2, as in
aejax.models.conv) then a 1x1 conv to `latent_dim` = D channels, so a 28x28
image becomes a 7x7 grid of D-vectors z_e(x). Each is replaced by its nearest
codebook vector e_k (K of them, `num_codes`); the decoder maps the grid of
quantised vectors z_q back up with the conv decoder's 2x upsampling layers.

The maths of quantisation (nearest code, straight-through gradient, usage
statistics) are plain functions here so tests can check them alone; the
module's methods are what `aejax.load` calls: `encode` (x → z_q, the code the
decoder reads), `decode` (z_q → image logits), `indices` (x → code grid of ints)
and `embed` (code grid → z_q, used to decode a prior's draws).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.models.conv import feature_map_sizes, upsample_to_image
from aejax.models.mlp import ACTIVATIONS


def squared_distances(z, codebook):
    """‖z_i − e_k‖² of vectors z [..., D] and a codebook [K, D] → [..., K], as ‖z‖² − 2 z·e + ‖e‖²."""
    return (jnp.sum(jnp.square(z), axis=-1, keepdims=True) - 2.0 * z @ codebook.T
            + jnp.sum(jnp.square(codebook), axis=-1))


def nearest_code(z, codebook):
    """k(z) = argmin_k ‖z − e_k‖² for every vector of z [..., D] → int32 [...]."""
    return jnp.argmin(squared_distances(z, codebook), axis=-1).astype(jnp.int32)


def straight_through(z_e, z_q):
    """z_e + sg[z_q − z_e]: equals z_q forward, passes the decoder's gradient to z_e unchanged (∂/∂z_e = I)."""
    return z_e + jax.lax.stop_gradient(z_q - z_e)


def code_counts(indices, num_codes: int):
    """n_k: how many vectors were assigned code k, for an int array of any shape → float32 [K]."""
    return jnp.sum(jax.nn.one_hot(indices.reshape(-1), num_codes, dtype=jnp.float32), axis=0)


def perplexity(counts):
    """exp(H(p)) of the code usage p_k = n_k / Σ n: K when all codes are used equally, 1 when one is."""
    p = counts / jnp.maximum(jnp.sum(counts), 1e-12)
    return jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)))


def dead_codes(counts):
    """How many codes no vector was assigned to."""
    return jnp.sum(counts == 0).astype(jnp.float32)


def _uniform(scale: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)
    return init


class GridEncoder(nn.Module):
    """Image → strided convs → 1x1 conv to `code_dim` channels: z_e, a [B, h, w, D] grid."""
    channels: Sequence[int]
    kernel_size: int
    code_dim: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for i, c in enumerate(self.channels):
            x = act(nn.Conv(c, (self.kernel_size,) * 2, strides=2, padding="SAME", name=f"conv_{i}")(x))
        return nn.Conv(self.code_dim, (1, 1), name="code")(x).astype(jnp.float32)


class GridDecoder(nn.Module):
    """z_q grid → 3x3 conv to the last encoder width → 2x upsampling layers (cropped as the encoder's sizes)."""
    channels: Sequence[int]        # the encoder's channels, in encoder order
    kernel_size: int
    image_shape: Sequence[int]
    activation: str = "relu"
    upsample: str = "subpixel"

    @nn.compact
    def __call__(self, z):
        act = ACTIVATIONS[self.activation]
        height, width, image_channels = self.image_shape
        sizes = feature_map_sizes(height, width, len(self.channels))
        h = act(nn.Conv(self.channels[-1], (3, 3), padding="SAME", name="embed")(z))
        return upsample_to_image(h, self.channels, image_channels, sizes, self.kernel_size, self.upsample, act)


class Codebook(nn.Module):
    """The K x D codebook {e_k}, uniform in ±1/K at init: every code starts near the encoder's small
    first outputs, so assignments spread by direction rather than piling onto the few nearest codes."""
    num_codes: int
    code_dim: int

    def setup(self):
        self.codebook = self.param("codebook", _uniform(1.0 / self.num_codes), (self.num_codes, self.code_dim))

    def __call__(self):
        return self.codebook


class VQVAE(nn.Module):
    """z_e = encoder(x); z_q = e_{k(z_e)}; decoder(z_q). `__call__` returns (logits, z_e, z_q, indices)."""
    encoder: nn.Module
    decoder: nn.Module
    num_codes: int
    code_dim: int

    def setup(self):
        self.quantizer = Codebook(self.num_codes, self.code_dim)

    def encode_continuous(self, x):
        return self.encoder(x)

    def indices(self, x):
        return nearest_code(self.encoder(x), self.quantizer())

    def embed(self, indices):
        return jnp.take(self.quantizer(), indices, axis=0)

    def encode(self, x):
        return self.embed(self.indices(x))

    def decode(self, z_q):
        return self.decoder(z_q)

    def __call__(self, x):
        z_e = self.encoder(x)
        indices = nearest_code(z_e, self.quantizer())
        z_q = self.embed(indices)
        return self.decoder(straight_through(z_e, z_q)), z_e, z_q, indices
