"""Denoising autoencoder (Vincent et al. 2008): reconstruct the clean x from a corrupted x̃.

    loss = −log p(x | g(f(x̃))),  x̃ ~ C(x̃ | x)

The corruption C (`config.corruption`) is drawn with the step's key:

* "gaussian": x̃ = x + σ ε, ε ~ N(0, I)  (σ = `noise_std`; not clipped);
* "masking": each pixel set to 0 with probability p (`corruption_prob`);
* "salt_and_pepper": each pixel, with probability p, set to 0 or 1 (fair coin).

Nats per image against the clean input, batch mean. Evaluation applies the
same corruption to the test images and reports the PSNR (dB, per image, then
averaged) of the noisy input and of the reconstruction against the clean image.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from aejax.core.options import Option, non_negative, one_of, probability
from aejax.objectives.ae import autoencoder_variant, reconstruction_terms
from aejax.objectives.likelihoods import psnr, reconstruction_metrics


def _gaussian(key, x, config):
    return x + config.noise_std * jax.random.normal(key, x.shape, x.dtype)


def _masking(key, x, config):
    return jnp.where(jax.random.bernoulli(key, config.corruption_prob, x.shape), 0.0, x)


def _salt_and_pepper(key, x, config):
    hit_key, value_key = jax.random.split(key)
    hit = jax.random.bernoulli(hit_key, config.corruption_prob, x.shape)
    salt = jax.random.bernoulli(value_key, 0.5, x.shape).astype(x.dtype)
    return jnp.where(hit, salt, x)


CORRUPTIONS: dict[str, Callable] = {
    "gaussian": _gaussian,
    "masking": _masking,
    "salt_and_pepper": _salt_and_pepper,
}

OPTIONS = {
    "corruption": Option("gaussian", one_of(CORRUPTIONS), "gaussian | masking | salt_and_pepper"),
    "noise_std": Option(0.3, non_negative, "σ of the gaussian corruption"),
    "corruption_prob": Option(0.3, probability, "p of masking / salt_and_pepper"),
}


def corrupt(key, x, config):
    """x̃ ~ C(x̃ | x) for the corruption named by `config.corruption`."""
    return CORRUPTIONS[config.corruption](key, x, config)


def make_denoising_loss(model, config, with_psnr: bool = False):

    def loss_fn(params, batch, key, step):
        del step
        x = batch["image"]
        noisy = corrupt(key, x, config)
        reconstruction, _, denoised = reconstruction_terms(model, config, params, x, inputs=noisy)
        loss = jnp.mean(reconstruction)
        metrics = {"loss": loss, "reconstruction": loss, **reconstruction_metrics(denoised, x)}
        if with_psnr:
            metrics["psnr_noisy"] = jnp.mean(psnr(noisy, x))
            metrics["psnr_reconstruction"] = jnp.mean(psnr(denoised, x))
        return loss, metrics

    return loss_fn


VARIANTS = (autoencoder_variant("denoising", make_denoising_loss, options=OPTIONS,
                                make_eval_loss=lambda model, config: make_denoising_loss(model, config, True)),)
