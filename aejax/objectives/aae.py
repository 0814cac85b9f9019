"""Adversarial autoencoder (Makhzani et al. 2015): match the code distribution to a prior with a GAN.

A deterministic encoder z = f(x), a decoder and a discriminator D(z) (an MLP
giving the logit that z was drawn from the prior p(z)). Every train step runs
the paper's three phases in order, each with its own optax optimiser over its
own params (the others are held fixed):

1. reconstruction (encoder, decoder): −log p(x | g(f(x)));
2. discriminator (D): −log D(z') − log(1 − D(f(x))), z' ~ p(z), f(x) held fixed;
3. generator (encoder): −log D(f(x)) (the non-saturating GAN loss).

Phase 2 sees the params phase 1 produced, and phase 3 those of phase 2, so the
update is not one gradient of one loss: the variant supplies `make_update`
(built from the shared `aejax.core.optim.gradient_update`, once per phase) and the
optimiser state holds one state per phase. Priors: `PRIORS` (`config.prior`).

Losses in nats (per image for the reconstruction, per code for the GAN terms),
batch mean. Metrics: the phases' losses, `discriminator_accuracy` (codes and
prior samples classified on the right side of logit 0) and `mmd`, the unbiased
RBF-kernel MMD² between codes and as many prior samples (bandwidth √latent_dim).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

from aejax import models
from aejax.core import optim
from aejax.core.errors import ConfigError
from aejax.core.distributions import mmd_rbf
from aejax.core.optim import gradient_update
from aejax.core.options import Option, one_of, positive
from aejax.models import discriminator as critic
from aejax.models.autoencoders import AdversarialAutoencoder
from aejax.objectives.ae import autoencoder_variant, make_reconstruction_loss

MIXTURE_COMPONENTS, MIXTURE_RADIUS, MIXTURE_STD = 10, 4.0, 0.5


def _standard_normal(config, key, n):
    return jax.random.normal(key, (n, config.latent_dim))


def _gaussian_mixture(config, key, n):
    """10 isotropic Gaussians (std 0.5) with means evenly spaced on a circle of radius 4
    in the first two latent dimensions (0 in the others)."""
    if config.latent_dim < 2:
        raise ConfigError("config.prior='mixture' needs config.latent_dim >= 2")
    component_key, noise_key = jax.random.split(key)
    angle = 2 * math.pi / MIXTURE_COMPONENTS * jax.random.randint(component_key, (n,), 0, MIXTURE_COMPONENTS)
    means = jnp.zeros((n, config.latent_dim)).at[:, 0].set(MIXTURE_RADIUS * jnp.cos(angle))
    means = means.at[:, 1].set(MIXTURE_RADIUS * jnp.sin(angle))
    return means + MIXTURE_STD * jax.random.normal(noise_key, (n, config.latent_dim))


PRIORS = {"gaussian": _standard_normal, "mixture": _gaussian_mixture}

OPTIONS = {
    "prior": Option("gaussian", one_of(PRIORS), "p(z) the codes are matched to: gaussian | mixture"),
    "generator_learning_rate": Option(5e-4, positive, "learning rate of the encoder's generator phase"),
    **critic.OPTIONS,
}


def sample_prior(config, key, n):
    return PRIORS[config.prior](config, key, n)


def build_aae(config, image_shape):
    discriminator = critic.build_discriminator(config, num_logits=1, activation=config.activation)
    return AdversarialAutoencoder(models.build("encoder", config, image_shape),
                                  models.build("decoder", config, image_shape), discriminator)


def make_phase_losses(model, config):
    """The three phases' losses, each (params, batch, key, step) → (loss, metrics)."""

    def discriminator(params, batch, key, step):
        del step
        z = jax.lax.stop_gradient(model.apply(params, batch["image"], method="encode"))
        z_prior = sample_prior(config, key, z.shape[0])
        logit_prior = model.apply(params, z_prior, method="discriminate")
        logit_code = model.apply(params, z, method="discriminate")
        loss = jnp.mean(jax.nn.softplus(-logit_prior)) + jnp.mean(jax.nn.softplus(logit_code))
        accuracy = 0.5 * (jnp.mean(logit_prior > 0) + jnp.mean(logit_code < 0))
        return loss, {"discriminator_loss": loss, "discriminator_accuracy": accuracy,
                      "mmd": mmd_rbf(z, z_prior, math.sqrt(config.latent_dim))}

    def generator(params, batch, key, step):
        del key, step
        z = model.apply(params, batch["image"], method="encode")
        loss = jnp.mean(jax.nn.softplus(-model.apply(params, z, method="discriminate")))
        return loss, {"generator_loss": loss}

    return {"reconstruction": make_reconstruction_loss(model, config), "discriminator": discriminator,
            "generator": generator}


# Which top-level param subtrees each phase trains.
PHASE_PARAMS = {"reconstruction": ("encoder", "decoder"), "discriminator": ("discriminator",),
                "generator": ("encoder",)}


def phase_optimizers(config, total_steps):
    """One optimiser per phase; each leaves the params outside its phase untouched."""
    rates = {"reconstruction": config.learning_rate,
             "discriminator": config.discriminator_learning_rate,
             "generator": config.generator_learning_rate}

    def trains(subtrees):
        return lambda params: {"params": {name: jax.tree_util.tree_map(
            lambda _: "train" if name in subtrees else "fixed", tree)
            for name, tree in params["params"].items()}}

    return {phase: optax.multi_transform(
        {"train": optim.make_optimizer(config, total_steps, learning_rate=rates[phase]),
         "fixed": optax.set_to_zero()}, trains(PHASE_PARAMS[phase]))
        for phase in PHASE_PARAMS}


def make_optimizer(config, total_steps):
    """Holds the phases' optimiser states; `make_update` applies them in turn."""
    phases = phase_optimizers(config, total_steps)

    def update(grads, state, params=None):
        raise TypeError("the adversarial AE updates phase by phase: use its make_update")

    return optax.GradientTransformation(
        lambda params: {phase: tx.init(params) for phase, tx in phases.items()}, update)


def make_update(model, config, total_steps):
    losses = make_phase_losses(model, config)
    updates = {phase: gradient_update(losses[phase], tx)
               for phase, tx in phase_optimizers(config, total_steps).items()}

    def update(params, opt_state, batch, key, step):
        opt_state, metrics = dict(opt_state), {}
        for phase, phase_update in updates.items():
            params, opt_state[phase], phase_metrics = phase_update(
                params, opt_state[phase], batch, key, step)
            metrics.update(phase_metrics)
        return params, opt_state, metrics

    return update


def make_aae_eval_loss(model, config):
    """All phases' metrics at the same params; the loss is the reconstruction term."""
    losses = make_phase_losses(model, config)

    def loss_fn(params, batch, key, step):
        metrics = {}
        for phase_loss in losses.values():
            metrics.update(phase_loss(params, batch, key, step)[1])
        return metrics["loss"], metrics

    return loss_fn


VARIANTS = (autoencoder_variant("aae", make_aae_eval_loss, build_aae, options=OPTIONS,
                                make_optimizer=make_optimizer, make_update=make_update, generative=True,
                                sample_prior=sample_prior),)
