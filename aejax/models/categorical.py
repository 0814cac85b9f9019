"""A VAE module with categorical latents: N variables of K classes each (Jang et al. 2017).

`logits(x)` gives log q(c_n = k | x) [B, N, K] (normalised: a log_softmax);
`decode(z)` takes the N one-hot (or relaxed, Gumbel-softmax) vectors flattened
to [B, N·K]; `encode(x)` is the point code the figures and clustering use, the
probabilities q flattened to [B, N·K]. Sampling lives in the objective
(aejax.objectives.gumbel_vae), with the step's key.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class CategoricalVAE(nn.Module):
    trunk: nn.Module      # images → hidden features
    decoder: nn.Module    # [B, N·K] → image-shaped likelihood parameters
    num_categorical: int
    num_categories: int

    @nn.compact
    def logits(self, x):
        h = self.trunk(x)
        raw = nn.Dense(self.num_categorical * self.num_categories, name="logits")(h).astype(jnp.float32)
        return jax.nn.log_softmax(raw.reshape(-1, self.num_categorical, self.num_categories), axis=-1)

    def encode(self, x):
        return jnp.exp(self.logits(x)).reshape(x.shape[0], -1)

    def decode(self, z):
        return self.decoder(z)

    def __call__(self, x):
        z = self.encode(x)
        return self.decode(z), z
