"""Inverse autoregressive flow posterior (Kingma et al. 2016): MADE networks and the VAE module around them.

A MADE (Germain et al. 2015) is a dense network whose weights are masked so
that output i sees only inputs 1..i−1: each unit gets a degree, inputs and
outputs 1..D, hidden units 1..D−1; a connection into a hidden unit of degree
k is kept from units of degree ≤ k, into an output of degree i from units of
degree < i. The Jacobian of its outputs with respect to its inputs is then
strictly lower-triangular. The encoder's context h (the trunk's features)
enters every first hidden layer unmasked.

One IAF step, with [m, s] = MADE(z, h) and the numerically stable LSTM-type update,

    σ = sigmoid(s),   z ← σ ⊙ z + (1 − σ) ⊙ m,   log |det ∂z_new/∂z| = Σ_i log σ_i

(triangular Jacobian with diagonal σ). The order of z is reversed between
steps, so each dimension is eventually conditioned on every other.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from aejax.models.autoencoders import LEARNED_LOGVAR
from aejax.models.mlp import ACTIVATIONS

# Added to s before the sigmoid: σ starts near 1, so each step starts near the identity (as in the paper).
FORGET_BIAS = 2.0


def made_masks(dim: int, hidden_dims: Sequence[int]) -> list[np.ndarray]:
    """Masks [in, out] of a MADE with `dim` inputs and outputs and the given hidden widths, in order 1..dim."""
    degrees = [np.arange(1, dim + 1)]
    for width in hidden_dims:
        degrees.append(np.arange(width) % max(dim - 1, 1) + 1)
    masks = [(later[None, :] >= earlier[:, None]) for earlier, later in zip(degrees[:-1], degrees[1:])]
    masks.append(np.arange(1, dim + 1)[None, :] > degrees[-1][:, None])
    return [m.astype(np.float32) for m in masks]


class MaskedDense(nn.Module):
    """x @ (W ⊙ mask) + b: a dense layer with some connections cut."""
    mask: np.ndarray   # [in, out]

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), self.mask.shape)
        bias = self.param("bias", nn.initializers.zeros, (self.mask.shape[1],))
        return x @ (kernel * jnp.asarray(self.mask)) + bias


class IAFStep(nn.Module):
    """One IAF step: (z, h) → (σ ⊙ z + (1 − σ) ⊙ m, Σ log σ)."""
    hidden_dims: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, z, h):
        act = ACTIVATIONS[self.activation]
        masks = made_masks(z.shape[-1], self.hidden_dims)
        hidden = act(MaskedDense(masks[0], name="masked_0")(z) + nn.Dense(masks[0].shape[1], use_bias=False,
                                                                         name="context")(h))
        for i, mask in enumerate(masks[1:-1], start=1):
            hidden = act(MaskedDense(mask, name=f"masked_{i}")(hidden))
        m = MaskedDense(masks[-1], name="shift")(hidden)
        s = MaskedDense(masks[-1], name="gate")(hidden) + FORGET_BIAS
        sigma = jax.nn.sigmoid(s)
        return sigma * z + (1.0 - sigma) * m, jnp.sum(jax.nn.log_sigmoid(s), axis=-1)


class IAFAutoencoder(nn.Module):
    """q(z_0 | x) = N(μ(x), σ²(x)), z_T = IAF steps of z_0 given h(x); decode(z_T).

    `encode` returns (z_T at z_0 = μ, log σ²): the flow's point code (what
    reconstruct, clustering and active units use) and the base spread.
    """
    trunk: nn.Module
    decoder: nn.Module
    latent_dim: int
    num_flows: int
    made_hidden_dims: Sequence[int]
    activation: str = "relu"
    learn_decoder_logvar: bool = False

    def setup(self):
        if self.learn_decoder_logvar:
            self.decoder_logvar = self.param(LEARNED_LOGVAR, nn.initializers.zeros, ())
        self.mean_head = nn.Dense(self.latent_dim)
        self.logvar_head = nn.Dense(self.latent_dim)
        self.steps = [IAFStep(tuple(self.made_hidden_dims), self.activation) for _ in range(self.num_flows)]

    def base_posterior(self, x):
        """(μ, log σ², h) of q(z_0 | x) and the context h."""
        h = self.trunk(x)
        return self.mean_head(h).astype(jnp.float32), self.logvar_head(h).astype(jnp.float32), h

    def flow(self, z0, h):
        """(z_T, Σ_t log |det ∂z_t/∂z_{t−1}|); z's order is reversed before every step but the first."""
        z, log_det = z0, jnp.zeros(z0.shape[:-1], z0.dtype)
        for t, step in enumerate(self.steps):
            if t > 0:
                z = z[..., ::-1]
            z, step_log_det = step(z, h)
            log_det = log_det + step_log_det
        return z, log_det

    def posterior_sample(self, x, key: jax.Array, num_samples: int | None = None):
        """(z_T, log q(z_T | x) = log N(z_0; μ, σ²) − Σ log-dets) for z_0 = μ + σ ε; [K, B, ·] with `num_samples`."""
        mean, logvar, h = self.base_posterior(x)
        shape = mean.shape if num_samples is None else (num_samples, *mean.shape)
        eps = jax.random.normal(key, shape, mean.dtype)
        z0 = mean + jnp.exp(0.5 * logvar) * eps
        log_q0 = jnp.sum(-0.5 * (np.log(2 * np.pi) + logvar + jnp.square(eps)), axis=-1)
        z, log_det = self.flow(z0, jnp.broadcast_to(h, (*shape[:-1], h.shape[-1])))
        return z, log_q0 - log_det

    def encode(self, x):
        mean, logvar, h = self.base_posterior(x)
        return self.flow(mean, h)[0], logvar

    def decode(self, z):
        return self.decoder(z)

    def __call__(self, x, key: jax.Array):
        z, log_q = self.posterior_sample(x, key)
        return self.decode(z), (z, log_q)
