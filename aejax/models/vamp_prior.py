"""The VampPrior VAE's module: a VAE that also holds K pseudo-inputs u_k (Tomczak & Welling 2018).

The prior is the mixture of the encoder's own posteriors at the pseudo-inputs,
p(z) = (1/K) Σ_k q(z | u_k); `prior_components` returns their (μ_k, log σ²_k).
The pseudo-inputs are image-shaped params, drawn from uniform noise on [0, 1]
(the data's range; there is no data at init) and left unconstrained.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from aejax.core.distributions import reparameterize
from aejax.models.autoencoders import LEARNED_LOGVAR

PSEUDO_INPUTS = "pseudo_inputs"


class VampPriorAutoencoder(nn.Module):
    """encode → (μ, log σ²), reparameterised z, decode; plus the prior's pseudo-inputs."""
    encoder: nn.Module   # returns (mean, logvar)
    decoder: nn.Module
    num_pseudo_inputs: int
    image_shape: Sequence[int]
    learn_decoder_logvar: bool = False

    def setup(self):
        if self.learn_decoder_logvar:
            self.decoder_logvar = self.param(LEARNED_LOGVAR, nn.initializers.zeros, ())
        self.pseudo_inputs = self.param(PSEUDO_INPUTS, nn.initializers.uniform(1.0),
                                        (self.num_pseudo_inputs, *self.image_shape))

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def prior_components(self):
        """(μ_k, log σ²_k) [K, latent] of q(z | u_k): the mixture components of p(z)."""
        return self.encoder(self.pseudo_inputs)

    def __call__(self, x, key: jax.Array):
        mean, logvar = self.encode(x)
        z = reparameterize(key, mean, logvar)
        return self.decode(z), (mean, logvar, z)
