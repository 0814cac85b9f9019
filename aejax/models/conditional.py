"""A conditional VAE module (Sohn et al. 2015): encoder and decoder both see the class label.

    q(z | x, y) = N(μ(x, y), diag σ²(x, y)),   p(x | z, y) = decoder([z, onehot(y)])

The label enters as a one-hot vector concatenated to the input features (the
flattened image for an MLP; for a conv encoder, K constant channels, one per
class, so the convolutions see it at every pixel) and to z. Labels are int
class indices [B]; `encode`, `decode` and `__call__` take them after the image
or code.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.core.distributions import reparameterize
from aejax.models.autoencoders import LEARNED_LOGVAR


def with_condition(x: jax.Array, onehot: jax.Array, spatial: bool) -> jax.Array:
    """[x, onehot(y)]: flat features for an MLP, or K broadcast channels for a conv encoder."""
    if spatial:
        planes = jnp.broadcast_to(onehot[:, None, None, :], (*x.shape[:-1], onehot.shape[-1]))
        return jnp.concatenate([x, planes.astype(x.dtype)], axis=-1)
    return jnp.concatenate([x.reshape(x.shape[0], -1), onehot.astype(x.dtype)], axis=-1)


class ConditionalVAE(nn.Module):
    """encode(x, y) → (μ, log σ²); decode(z, y) → likelihood parameters; __call__(x, y, key)."""
    encoder: nn.Module    # GaussianEncoder on [x, onehot(y)]
    decoder: nn.Module    # on [z, onehot(y)]
    num_classes: int
    spatial_condition: bool = False
    learn_decoder_logvar: bool = False

    def setup(self):
        if self.learn_decoder_logvar:
            self.decoder_logvar = self.param(LEARNED_LOGVAR, nn.initializers.zeros, ())

    def onehot(self, labels):
        return jax.nn.one_hot(labels, self.num_classes, dtype=jnp.float32)

    def encode(self, x, labels):
        return self.encoder(with_condition(x, self.onehot(labels), self.spatial_condition))

    def decode(self, z, labels):
        return self.decoder(jnp.concatenate([z, self.onehot(labels).astype(z.dtype)], axis=-1))

    def __call__(self, x, labels, key: jax.Array):
        mean, logvar = self.encode(x, labels)
        z = reparameterize(key, mean, logvar)
        return self.decode(z, labels), (mean, logvar, z)
