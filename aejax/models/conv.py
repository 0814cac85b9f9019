"""Convolutional encoders and decoders: strided convs down, transposed convs up.

Every conv layer has stride 2 and "SAME" padding, so layer i maps a side of n
pixels to ceil(n / 2). The decoder mirrors the encoder exactly: it starts at
the encoder's smallest feature map and after each transposed conv (which
doubles the side) crops to the size the matching encoder layer saw, so any
image size works (28x28 → 14 → 7 and back; 64x64 → 32 → 16 → 8 → 4; even
8x8). With conv_channels=(32, 32, 32, 32), kernel 4 and hidden_dims=(256, 256)
this is the 64x64 encoder/decoder of Burgess et al. (2018).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from aejax.models.mlp import ACTIVATIONS, MLP


def feature_map_sizes(height: int, width: int, num_layers: int) -> list[tuple[int, int]]:
    """Spatial size entering each conv layer, then the size after the last one."""
    sizes = [(height, width)]
    for _ in range(num_layers):
        h, w = sizes[-1]
        sizes.append((-(-h // 2), -(-w // 2)))
    return sizes


class ConvTrunk(nn.Module):
    """Image → strided convs → flat → activated dense layers (the shared encoder body)."""
    channels: Sequence[int]
    kernel_size: int
    hidden_dims: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for i, c in enumerate(self.channels):
            x = act(nn.Conv(c, (self.kernel_size,) * 2, strides=2, padding="SAME", name=f"conv_{i}")(x))
        x = x.reshape(x.shape[0], -1)
        if self.hidden_dims:
            x = MLP(tuple(self.hidden_dims), self.activation, activate_last=True)(x)
        return x


class ConvEncoder(nn.Module):
    """ConvTrunk → `latent_dim` code (linear unless `code_activation`)."""
    channels: Sequence[int]
    kernel_size: int
    hidden_dims: Sequence[int]
    latent_dim: int
    activation: str = "relu"
    code_activation: str = "linear"

    @nn.compact
    def __call__(self, x):
        h = ConvTrunk(self.channels, self.kernel_size, self.hidden_dims, self.activation)(x)
        code = nn.Dense(self.latent_dim, name="code")(h)
        return ACTIVATIONS[self.code_activation](code).astype(jnp.float32)


class ConvDecoder(nn.Module):
    """Code → dense layers → smallest feature map → transposed convs → image-shaped raw output."""
    channels: Sequence[int]        # the encoder's channels, in encoder order
    kernel_size: int
    hidden_dims: Sequence[int]     # dense widths after the code, in decoder order
    image_shape: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, z):
        act = ACTIVATIONS[self.activation]
        height, width, image_channels = self.image_shape
        sizes = feature_map_sizes(height, width, len(self.channels))
        smallest = (*sizes[-1], self.channels[-1])
        h = MLP((*self.hidden_dims, int(np.prod(smallest))), self.activation, activate_last=True)(z)
        h = h.reshape(z.shape[0], *smallest)
        out_channels = (image_channels, *self.channels[:-1])
        for i in reversed(range(len(self.channels))):
            h = nn.ConvTranspose(out_channels[i], (self.kernel_size,) * 2, strides=(2, 2),
                                 padding="SAME", name=f"deconv_{i}")(h)
            h = h[:, :sizes[i][0], :sizes[i][1]]
            if i > 0:
                h = act(h)
        return h.astype(jnp.float32)
