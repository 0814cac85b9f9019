"""Decoder likelihoods by name (`config.likelihood`), and the distortion metrics every variant reports."""
from __future__ import annotations

from typing import Any, Callable

import jax.numpy as jnp
import ml_collections

from aejax.core import distributions
from aejax.core.errors import ConfigError
from aejax.core.options import Option, number, one_of
from aejax.models.autoencoders import LEARNED_LOGVAR

def _learned_gaussian(params, config):
    del config
    if LEARNED_LOGVAR not in params.get("params", {}):
        raise ConfigError("config.likelihood='gaussian_learned' needs a model with a learned decoder "
                          "variance (the VAE family: vae, iwae); use 'gaussian' for a fixed one")
    return distributions.gaussian_likelihood(params["params"][LEARNED_LOGVAR])


LIKELIHOODS: dict[str, Callable[[Any, ml_collections.ConfigDict], distributions.Likelihood]] = {
    "bernoulli": lambda params, config: distributions.BERNOULLI,
    "gaussian": lambda params, config: distributions.gaussian_likelihood(
        config.get("decoder_logvar", 0.0)),
    "gaussian_learned": _learned_gaussian,
}

# Read by every variant: the decoder's likelihood p(x | z).
OPTIONS = {
    "likelihood": Option("bernoulli", one_of(LIKELIHOODS), "bernoulli | gaussian | gaussian_learned"),
    "decoder_logvar": Option(0.0, number, "fixed log σ² of a gaussian likelihood"),
}


def learns_decoder_variance(config: ml_collections.ConfigDict) -> bool:
    return config.likelihood == "gaussian_learned"


def likelihood(params: Any, config: ml_collections.ConfigDict) -> distributions.Likelihood:
    return LIKELIHOODS[config.likelihood](params, config)


def reconstruction_metrics(mean_image, x):
    """Distortion figures reported for every variant, whatever it trains on."""
    flat = distributions.flat_pixels
    return {"mse": jnp.mean(distributions.mean_pixels(jnp.square(flat(mean_image) - flat(x))))}


def psnr(estimate, clean, max_value: float = 1.0):
    """Peak signal-to-noise ratio per image, in dB: 10·log10(MAX² / MSE(image))."""
    flat = distributions.flat_pixels
    mse = distributions.mean_pixels(jnp.square(flat(estimate) - flat(clean)))
    return 10.0 * jnp.log10(max_value ** 2 / jnp.maximum(mse, 1e-10))
