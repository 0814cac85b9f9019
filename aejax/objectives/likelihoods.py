"""Decoder likelihoods by name (`config.likelihood`)."""
from __future__ import annotations

from typing import Any, Callable

import jax.numpy as jnp
import ml_collections

from aejax import distributions

LIKELIHOODS: dict[str, Callable[[Any, ml_collections.ConfigDict], distributions.Likelihood]] = {
    "bernoulli": lambda params, config: distributions.BERNOULLI,
    "gaussian": lambda params, config: distributions.gaussian_likelihood(
        config.get("decoder_logvar", 0.0)),
}


def likelihood(params: Any, config: ml_collections.ConfigDict) -> distributions.Likelihood:
    return LIKELIHOODS[config.likelihood](params, config)


def reconstruction_metrics(mean_image, x):
    """Distortion figures reported for every variant, whatever it trains on."""
    return {"mse": jnp.mean(jnp.square(mean_image - x))}
