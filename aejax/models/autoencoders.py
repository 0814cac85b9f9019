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

from aejax.core.distributions import reparameterize

# Name of the learned scalar log σ² of a Gaussian p(x | z) ("gaussian_learned").
LEARNED_LOGVAR = "decoder_logvar"


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
    """VAE: encode → (μ, log σ²), reparameterised z, decode → likelihood parameters.

    With `learn_decoder_logvar` the model also holds the scalar log σ² of a
    Gaussian p(x | z) (param `decoder_logvar`, read by the likelihood).
    """
    encoder: nn.Module   # returns (mean, logvar)
    decoder: nn.Module
    learn_decoder_logvar: bool = False

    def setup(self):
        if self.learn_decoder_logvar:
            self.decoder_logvar = self.param(LEARNED_LOGVAR, nn.initializers.zeros, ())

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def __call__(self, x, key: jax.Array):
        mean, logvar = self.encode(x)
        z = reparameterize(key, mean, logvar)
        return self.decode(z), (mean, logvar, z)


class AdversarialAutoencoder(nn.Module):
    """Deterministic autoencoder plus a discriminator D(z) → logit that z came from the prior."""
    encoder: nn.Module
    decoder: nn.Module
    discriminator: nn.Module   # codes [B, latent_dim] → logits [B, 1]

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def discriminate(self, z):
        return self.discriminator(z)[..., 0]

    def __call__(self, x):
        z = self.encode(x)
        self.discriminate(z)   # unused here; makes `init` create the discriminator's params
        return self.decode(z), z
