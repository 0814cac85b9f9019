"""The two-stochastic-layer VAE of the IWAE paper (Burda et al. 2016): x → z1 → z2 and back.

    inference   q(z1 | x) q(z2 | z1)          generative   p(z2) p(z1 | z2) p(x | z1),  p(z2) = N(0, I)

Each conditional is a diagonal Gaussian whose (μ, log σ²) come from an MLP;
p(x | z1) is the decoder's likelihood. `encode`/`decode` are the bottom layer
(x ↔ z1), so the point code, reconstructions and figures are z1's; the other
two conditionals are the methods `infer_top` (q(z2 | z1)) and `prior_middle`
(p(z1 | z2)).
"""
from __future__ import annotations

import flax.linen as nn
import jax

from aejax.core.distributions import reparameterize
from aejax.models.autoencoders import LEARNED_LOGVAR


class TwoLayerVAE(nn.Module):
    """Modules: q(z1|x), q(z2|z1), p(z1|z2) each → (mean, logvar); the decoder z1 → p(x|z1)'s raw output."""
    encoder: nn.Module       # x → q(z1 | x)
    top_encoder: nn.Module   # z1 → q(z2 | z1)
    top_decoder: nn.Module   # z2 → p(z1 | z2)
    decoder: nn.Module       # z1 → p(x | z1)
    learn_decoder_logvar: bool = False

    def setup(self):
        if self.learn_decoder_logvar:
            self.decoder_logvar = self.param(LEARNED_LOGVAR, nn.initializers.zeros, ())

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z1):
        return self.decoder(z1)

    def infer_top(self, z1):
        return self.top_encoder(z1)

    def prior_middle(self, z2):
        return self.top_decoder(z2)

    def __call__(self, x, key: jax.Array):
        bottom_key, top_key = jax.random.split(key)
        mean1, logvar1 = self.encode(x)
        z1 = reparameterize(bottom_key, mean1, logvar1)
        mean2, logvar2 = self.infer_top(z1)
        z2 = reparameterize(top_key, mean2, logvar2)
        self.prior_middle(z2)   # unused here; makes `init` create p(z1 | z2)'s params
        return self.decode(z1), (z1, z2)
