"""Convolutional encoders and decoders: strided convs down, learned 2x upsampling up.

Every conv layer has stride 2 and "SAME" padding, so layer i maps a side of n
pixels to ceil(n / 2). The decoder mirrors the encoder exactly: it starts at
the encoder's smallest feature map and after each 2x upsampling layer crops to
the size the matching encoder layer saw, so any image size works (28x28 → 14
→ 7 and back; 64x64 → 32 → 16 → 8 → 4; even 8x8). With conv_channels=(32, 32,
32, 32), kernel 4, hidden_dims=(256, 256) and conv_upsample="transpose" this is
the 64x64 encoder/decoder of Burgess et al. (2018).

Upsampling layers (`UPSAMPLERS`, `config.conv_upsample`):

* "transpose": a stride-2 transposed conv with the encoder's kernel size;
* "subpixel": a stride-1 conv to 4x the channels, then depth-to-space (the
  pixel shuffle of Shi et al. 2016). Each output pixel of a stride-2 transposed
  conv with kernel k ≤ 4 is a linear function of a 2x2 input window, so a 3x3
  sub-pixel conv contains every such transposed conv (tests/test_conv.py fits
  one exactly). It is the default because XLA's CPU gradient of a transposed
  conv is several times slower than that of a plain conv.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from aejax.core.options import Option, one_of, positive_integer, sizes
from aejax.models.mlp import ACTIVATIONS, MLP


def feature_map_sizes(height: int, width: int, num_layers: int) -> list[tuple[int, int]]:
    """Spatial size entering each conv layer, then the size after the last one."""
    sizes = [(height, width)]
    for _ in range(num_layers):
        h, w = sizes[-1]
        sizes.append((-(-h // 2), -(-w // 2)))
    return sizes


def depth_to_space(h, factor: int = 2):
    """[B, H, W, f²·C] → [B, f·H, f·W, C]: channel group (a, b) becomes pixel (f·i + a, f·j + b)."""
    b, height, width, channels = h.shape
    h = h.reshape(b, height, width, factor, factor, channels // factor ** 2)
    return h.transpose(0, 1, 3, 2, 4, 5).reshape(b, factor * height, factor * width, channels // factor ** 2)


class SubPixelUpsample(nn.Module):
    """2x upsampling: a 'SAME' conv to 4·features channels, then depth-to-space."""
    features: int
    kernel_size: int = 3

    @nn.compact
    def __call__(self, h):
        return depth_to_space(nn.Conv(4 * self.features, (self.kernel_size,) * 2, padding="SAME")(h))


UPSAMPLERS = {
    "transpose": lambda features, kernel_size, name: nn.ConvTranspose(
        features, (kernel_size,) * 2, strides=(2, 2), padding="SAME", name=name),
    "subpixel": lambda features, kernel_size, name: SubPixelUpsample(features, kernel_size // 2 + 1, name=name),
}

OPTIONS = {
    "conv_channels": Option((32, 64), sizes, 'architecture "conv": channels of the stride-2 conv layers'),
    "conv_kernel_size": Option(4, positive_integer, "side of the conv kernels"),
    "conv_upsample": Option("subpixel", one_of(UPSAMPLERS), "decoder's 2x upsampling: subpixel | transpose"),
}


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
    """Code → dense layers → smallest feature map → 2x upsampling layers → image-shaped raw output."""
    channels: Sequence[int]        # the encoder's channels, in encoder order
    kernel_size: int
    hidden_dims: Sequence[int]     # dense widths after the code, in decoder order
    image_shape: Sequence[int]
    activation: str = "relu"
    upsample: str = "subpixel"

    @nn.compact
    def __call__(self, z):
        act = ACTIVATIONS[self.activation]
        height, width, image_channels = self.image_shape
        sizes = feature_map_sizes(height, width, len(self.channels))
        smallest = (*sizes[-1], self.channels[-1])
        h = MLP((*self.hidden_dims, int(np.prod(smallest))), self.activation, activate_last=True)(z)
        h = h.reshape(z.shape[0], *smallest)
        return upsample_to_image(h, self.channels, image_channels, sizes, self.kernel_size, self.upsample, act)


def upsample_to_image(h, channels, image_channels: int, sizes, kernel_size: int, upsample: str, act):
    """The decoder half shared by conv decoders: from the smallest feature map, one 2x upsampling layer per
    encoder conv (named upsample_i, inside the calling module), each cropped to the encoder's size, to raw output."""
    out_channels = (image_channels, *channels[:-1])
    for i in reversed(range(len(channels))):
        h = UPSAMPLERS[upsample](out_channels[i], kernel_size, f"upsample_{i}")(h)
        h = h[:, :sizes[i][0], :sizes[i][1]]
        if i > 0:
            h = act(h)
    return h.astype(jnp.float32)
