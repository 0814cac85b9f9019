"""Optimiser and learning-rate schedule from the config."""
from __future__ import annotations

from typing import Callable

import ml_collections
import optax

OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adam": lambda lr, config: optax.adam(lr),
    "adamw": lambda lr, config: optax.adamw(lr, weight_decay=config.weight_decay),
    "sgd": lambda lr, config: optax.sgd(lr, momentum=config.get("momentum", 0.9) or None),
    "rmsprop": lambda lr, config: optax.rmsprop(lr),
}


def _cosine(config, total_steps):
    return optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, max(config.warmup_steps, 0), max(total_steps, 1))


def _constant(config, total_steps):
    del total_steps
    if config.warmup_steps > 0:
        return optax.linear_schedule(0.0, config.learning_rate, config.warmup_steps)
    return config.learning_rate


SCHEDULES = {"constant": _constant, "cosine": _cosine}


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int,
                   learning_rate: float | None = None) -> optax.GradientTransformation:
    """Optional gradient clipping, then the named optimiser on the schedule."""
    if learning_rate is not None:
        config = ml_collections.ConfigDict(dict(config.to_dict(), learning_rate=learning_rate))
    schedule = SCHEDULES[config.lr_schedule](config, total_steps)
    transforms = [OPTIMIZERS[config.optimizer](schedule, config)]
    if config.grad_clip_norm > 0:
        transforms.insert(0, optax.clip_by_global_norm(config.grad_clip_norm))
    return optax.chain(*transforms)
