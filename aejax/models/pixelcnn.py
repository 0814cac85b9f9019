"""A small gated PixelCNN over grids of discrete codes: the learned prior p(k) of a VQ-VAE.

p(k) = Π_i p(k_i | k_<i) in raster order (row by row, left to right). Causality
comes from masked convolutions (van den Oord et al. 2016, "Pixel Recurrent
Neural Networks"): the first layer's mask (type A) hides the centre position
and everything after it, the later layers' (type B) hide only what comes after
the centre, so the output at position i sees inputs at positions < i only.
Each layer after the first is a gated unit tanh(a) ⊙ σ(b) (van den Oord et al.
2016, "Conditional Image Generation with PixelCNN Decoders") with a residual
connection. This is the single-stack form: its receptive field has the known
blind spot to the upper right, which a 7x7 code grid mostly covers anyway.

Inputs are one-hot code grids [B, h, w, K] (float, so tests can differentiate
the outputs with respect to them); outputs are logits [B, h, w, K].
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def causal_mask(kernel_size: int, mask_type: str) -> np.ndarray:
    """[k, k] of 0/1: the kernel taps a masked conv keeps; "A" excludes the centre, "B" includes it."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask type {mask_type!r}: use 'A' or 'B'")
    centre = kernel_size // 2
    mask = np.zeros((kernel_size, kernel_size), np.float32)
    mask[:centre, :] = 1.0
    mask[centre, :centre + (mask_type == "B")] = 1.0
    return mask


class MaskedConv(nn.Module):
    """A 'SAME' conv whose kernel is multiplied by the causal mask of `mask_type`."""
    features: int
    kernel_size: int
    mask_type: str

    @nn.compact
    def __call__(self, x):
        k = self.kernel_size
        mask = np.broadcast_to(causal_mask(k, self.mask_type)[:, :, None, None], (k, k, x.shape[-1], self.features))
        return nn.Conv(self.features, (k, k), padding="SAME", mask=jnp.asarray(mask), name="conv")(x)


def gate(h):
    """tanh(a) ⊙ σ(b) of the two halves of the channels."""
    a, b = jnp.split(h, 2, axis=-1)
    return jnp.tanh(a) * nn.sigmoid(b)


class GatedPixelCNN(nn.Module):
    """One-hot code grid → logits of p(k_i | k_<i) at every position."""
    num_codes: int
    channels: int = 64
    num_layers: int = 5
    first_kernel_size: int = 5
    kernel_size: int = 3

    @nn.compact
    def __call__(self, one_hot):
        h = nn.Dense(self.channels, use_bias=False, name="embed")(one_hot)
        h = gate(MaskedConv(2 * self.channels, self.first_kernel_size, "A", name="masked_a")(h))
        for i in range(self.num_layers):
            g = gate(MaskedConv(2 * self.channels, self.kernel_size, "B", name=f"masked_b_{i}")(h))
            h = h + nn.Conv(self.channels, (1, 1), name=f"residual_{i}")(g)
        h = nn.relu(nn.Conv(self.channels, (1, 1), name="head_0")(nn.relu(h)))
        return nn.Conv(self.num_codes, (1, 1), name="head_1")(h)


def log_likelihood(model: GatedPixelCNN, params, codes):
    """log p(k) per grid, in nats: Σ_i log softmax(logits_i)[k_i], codes int [B, h, w] → [B]."""
    logits = model.apply(params, jax.nn.one_hot(codes, model.num_codes))
    log_p = jnp.take_along_axis(jax.nn.log_softmax(logits), codes[..., None], axis=-1)[..., 0]
    return jnp.sum(log_p, axis=(1, 2))


def bits_per_dim(log_p, grid_shape) -> jax.Array:
    """−log₂ p(k) per code position, batch mean."""
    return -jnp.mean(log_p) / (math.log(2) * int(np.prod(grid_shape)))


def sample(model: GatedPixelCNN, params, key, n: int, grid_shape) -> jax.Array:
    """n code grids by ancestral sampling: k_i ~ p(k_i | k_<i), one position at a time in raster order."""
    height, width = grid_shape

    def draw(i, codes):
        logits = model.apply(params, jax.nn.one_hot(codes, model.num_codes))
        row, col = i // width, i % width
        code = jax.random.categorical(jax.random.fold_in(key, i), logits[:, row, col])
        return codes.at[:, row, col].set(code.astype(jnp.int32))

    return jax.lax.fori_loop(0, height * width, draw, jnp.zeros((n, height, width), jnp.int32))
