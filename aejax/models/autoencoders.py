"""Autoencoder modules: an encoder and a decoder behind `encode`/`decode`.

Every module here is used as a pure function through `Module.apply` with
explicit params and (where sampling happens) an explicit PRNG key; the
methods `encode` and `decode` are what `aejax.load` and the evaluation code
call, so every variant exposes them.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.distributions import reparameterize


class Autoencoder(nn.Module):
    """Deterministic autoencoder: z = f(x), x̂ = g(z)."""
    encoder: nn.Module
    decoder: nn.Module

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def __call__(self, x):
        z = self.encode(x)
        return self.decode(z), z


class GaussianEncoder(nn.Module):
    """Trunk followed by the Gaussian head q(z | x) = N(μ(x), diag σ²(x))."""
    trunk: nn.Module
    latent_dim: int

    @nn.compact
    def __call__(self, x):
        h = self.trunk(x)
        mean = nn.Dense(self.latent_dim, name="mean")(h)
        logvar = nn.Dense(self.latent_dim, name="logvar")(h)
        return mean.astype(jnp.float32), logvar.astype(jnp.float32)


class VariationalAutoencoder(nn.Module):
    """VAE: encode → (μ, log σ²), reparameterised z, decode → likelihood parameters."""
    encoder: nn.Module   # returns (mean, logvar)
    decoder: nn.Module

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def __call__(self, x, key: jax.Array):
        mean, logvar = self.encode(x)
        z = reparameterize(key, mean, logvar)
        return self.decode(z), (mean, logvar, z)
