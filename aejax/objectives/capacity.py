"""Annealed VAE, "annealed_vae" (Burgess et al. 2018): the KL held at a target capacity C_t raised over training.

From "Understanding disentangling in β-VAE": rather than weighting the KL by a β, the
KL is pulled towards a target C (nats) with a large weight γ, and C grows linearly so
the code gains information a little at a time (the factors that reduce the
reconstruction error most are encoded first):

    loss = −E_q[log p(x|z)] + γ · |KL(q(z|x) ‖ p(z)) − C_t|,   C_t = C_max · min(1, t / capacity_steps)

with the KL the batch mean (summed over latent dims), as in disentanglement_lib.
`capacity_steps` = 0 holds C at C_max from the start.

Not the KL warm-up of "vae" (`kl_warmup_steps`, experiments/vae_annealed.py), which
anneals the *weight* β_t of the KL from 0 to β; here the weight stays γ and the *target*
KL is annealed. γ, C_max and the ramp length enter in arithmetic only (no Python branch
on their values), so populations (vmapped sweeps) can pass them per member. Nats per
image, batch mean; the reported `elbo` is the usual bound.
"""
from __future__ import annotations

import jax.numpy as jnp

from aejax.core.distributions import kl_divergence
from aejax.core.options import Option, count, non_negative
from aejax.objectives.likelihoods import likelihood
from aejax.objectives.vae import elbo_metrics, vae_variant

OPTIONS = {
    "capacity_gamma": Option(1000.0, non_negative, "γ, the weight of |KL − C_t| (annealed_vae)"),
    "capacity_max": Option(25.0, non_negative, "C_max (nats), the final target KL (annealed_vae)"),
    "capacity_steps": Option(100_000, count, "steps over which C_t rises from 0 to C_max (0: C_max throughout)"),
}


def capacity(config, step):
    """C_t = C_max · min(1, t / capacity_steps), or C_max when capacity_steps = 0."""
    c_max, ramp_steps = config.capacity_max, config.capacity_steps
    ramp = jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / jnp.maximum(ramp_steps, 1))
    return jnp.where(jnp.asarray(ramp_steps) > 0, c_max * ramp, jnp.asarray(c_max, jnp.float32))


def make_annealed_vae_loss(model, config):

    def loss_fn(params, batch, key, step):
        x = batch["image"]
        out, (mean, logvar, _) = model.apply(params, x, key)
        p_x = likelihood(params, config)
        reconstruction = -p_x.log_prob(out, x)
        kl_per_dim = kl_divergence(mean, logvar)
        target = capacity(config, step)
        kl = jnp.mean(jnp.sum(kl_per_dim, axis=-1))
        loss = jnp.mean(reconstruction) + config.capacity_gamma * jnp.abs(kl - target)
        return loss, {"loss": loss, "capacity": target,
                      **elbo_metrics(reconstruction, kl_per_dim, p_x.mean(out), x)}

    return loss_fn


VARIANTS = (vae_variant("annealed_vae", make_annealed_vae_loss, OPTIONS),)
