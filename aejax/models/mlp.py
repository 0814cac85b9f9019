"""Fully connected encoders and decoders on flattened images."""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "gelu": nn.gelu,
    "tanh": jnp.tanh,
    "sigmoid": nn.sigmoid,
    "elu": nn.elu,
    "leaky_relu": nn.leaky_relu,
    "linear": lambda x: x,
}


class MLP(nn.Module):
    """Dense layers with an activation after each but the last (unless `activate_last`)."""
    features: Sequence[int]
    activation: str = "relu"
    activate_last: bool = False
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for i, width in enumerate(self.features):
            x = nn.Dense(width, dtype=self.dtype, name=f"dense_{i}")(x)
            if i < len(self.features) - 1 or self.activate_last:
                x = act(x)
        return x


class MLPTrunk(nn.Module):
    """Image [B, H, W, C] → flat → activated hidden layers (a shared encoder body)."""
    hidden_dims: Sequence[int]
    activation: str = "relu"
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        if not self.hidden_dims:
            return x
        return MLP(self.hidden_dims, self.activation, activate_last=True, dtype=self.dtype)(x)


class MLPEncoder(nn.Module):
    """Image → hidden layers → `latent_dim` outputs (a deterministic code).

    The code is linear unless `code_activation` says otherwise: sparse and
    contractive AEs penalise an activated (e.g. sigmoid) code layer.
    """
    hidden_dims: Sequence[int]
    latent_dim: int
    activation: str = "relu"
    dtype: jnp.dtype | None = None
    code_activation: str = "linear"

    @nn.compact
    def __call__(self, x):
        h = MLPTrunk(self.hidden_dims, self.activation, self.dtype)(x)
        code = nn.Dense(self.latent_dim, dtype=self.dtype, name="code")(h)
        return ACTIVATIONS[self.code_activation](code).astype(jnp.float32)


class MLPDecoder(nn.Module):
    """Latent → hidden layers → image-shaped raw output (logits or means)."""
    hidden_dims: Sequence[int]
    image_shape: Sequence[int]
    activation: str = "relu"
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, z):
        out = MLP((*self.hidden_dims, int(np.prod(self.image_shape))), self.activation,
                  dtype=self.dtype)(z)
        return out.reshape(z.shape[0], *self.image_shape).astype(jnp.float32)


class TiedMLPAutoencoder(nn.Module):
    """A symmetric MLP autoencoder whose decoder reuses the encoder's kernels.

    Encoder layer i computes h W_i + b_i; decoder layer i (in reverse order)
    computes h W_iᵀ + c_i with its own bias c_i, so the decoder adds only
    biases: about half the weights of the untied stacked AE.
    """
    hidden_dims: Sequence[int]
    latent_dim: int
    image_shape: Sequence[int]
    activation: str = "relu"
    code_activation: str = "linear"

    def setup(self):
        dims = (int(np.prod(self.image_shape)), *self.hidden_dims, self.latent_dim)
        init = nn.initializers.lecun_normal()
        self.kernels = [self.param(f"kernel_{i}", init, (d_in, d_out))
                        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:]))]
        self.encoder_biases = [self.param(f"encoder_bias_{i}", nn.initializers.zeros, (d,))
                               for i, d in enumerate(dims[1:])]
        self.decoder_biases = [self.param(f"decoder_bias_{i}", nn.initializers.zeros, (d,))
                               for i, d in enumerate(dims[:-1])]

    def encode(self, x):
        h = x.reshape(x.shape[0], -1)
        last = len(self.kernels) - 1
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.encoder_biases)):
            h = h @ kernel + bias
            h = ACTIVATIONS[self.activation if i < last else self.code_activation](h)
        return h

    def decode(self, z):
        h = z
        for i in reversed(range(len(self.kernels))):
            h = h @ self.kernels[i].T + self.decoder_biases[i]
            if i > 0:
                h = ACTIVATIONS[self.activation](h)
        return h.reshape(z.shape[0], *self.image_shape)

    def __call__(self, x):
        z = self.encode(x)
        return self.decode(z), z
