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
    """Image → hidden layers → `latent_dim` linear outputs (a deterministic code)."""
    hidden_dims: Sequence[int]
    latent_dim: int
    activation: str = "relu"
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x):
        h = MLPTrunk(self.hidden_dims, self.activation, self.dtype)(x)
        return nn.Dense(self.latent_dim, dtype=self.dtype, name="code")(h).astype(jnp.float32)


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
