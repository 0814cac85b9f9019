"""Check a config before anything is built or compiled.

Each rule names a key and what is allowed; the first broken rule ends the run
with a one-line `ConfigError`.
"""
from __future__ import annotations

from typing import Any, Callable

import ml_collections

REQUIRED_KEYS = (
    "model", "dataset", "latent_dim", "batch_size", "num_epochs", "num_train_steps",
    "learning_rate", "seed", "beta", "log_every_steps", "eval_every_steps",
    "checkpoint_every_steps",
)


class ConfigError(ValueError):
    """A config value that cannot work; the message says which and what is allowed."""


def _choice(allowed: Callable[[], Any]):
    def check(value):
        options = tuple(allowed())
        return value in options, "one of " + ", ".join(map(str, options))
    return check


def _positive(value):
    return isinstance(value, (int, float)) and value > 0, "a positive number"


def _non_negative(value):
    return isinstance(value, (int, float)) and value >= 0, "a number ≥ 0"


def _probability(value):
    return isinstance(value, (int, float)) and 0 <= value <= 1, "a number in [0, 1]"


def _count(value):
    return isinstance(value, int) and value >= 0, "an integer ≥ 0"


def _bool(value):
    return isinstance(value, bool), "True or False"


def _steps(value):
    return isinstance(value, int) and (value > 0 or value == -1), "a positive integer, or -1"


def _dataset(value):
    from aejax import data
    if value in data.KNOWN_DATASETS:
        return True, ""
    import tensorflow_datasets as tfds
    allowed = f"one of aejax's datasets ({', '.join(data.KNOWN_DATASETS)}) or a tfds catalog name"
    try:
        tfds.builder_cls(value)  # a registry look-up; needs neither network nor TensorFlow
    except (tfds.core.registered.DatasetNotFoundError, ValueError):
        return False, allowed
    return True, ""


def _rules() -> dict[str, Callable[[Any], tuple[bool, str]]]:
    from aejax import models, optim, registry
    from aejax.data import pipeline, stream
    from aejax.models.conv import UPSAMPLERS
    from aejax.models.mlp import ACTIVATIONS
    from aejax.objectives.aae import PRIORS
    from aejax.objectives.contractive import JACOBIAN_METHODS
    from aejax.objectives.denoising import CORRUPTIONS
    from aejax.objectives.likelihoods import LIKELIHOODS
    from aejax.objectives.tcvae import TC_ESTIMATORS
    return {
        "model": _choice(registry.names),
        "architecture": _choice(lambda: models.ARCHITECTURES),
        "activation": _choice(lambda: ACTIVATIONS),
        "code_activation": _choice(lambda: ACTIVATIONS),
        "corruption": _choice(lambda: CORRUPTIONS),
        "jacobian_method": _choice(lambda: JACOBIAN_METHODS),
        "prior": _choice(lambda: PRIORS),
        "conv_upsample": _choice(lambda: UPSAMPLERS),
        "likelihood": _choice(lambda: LIKELIHOODS),
        "binarize": _choice(lambda: pipeline.BINARIZATIONS),
        "optimizer": _choice(lambda: optim.OPTIMIZERS),
        "lr_schedule": _choice(lambda: optim.SCHEDULES),
        "latent_dim": _positive,
        "batch_size": _positive,
        "eval_batch_size": _positive,
        "num_epochs": _positive,
        "learning_rate": _positive,
        "log_every_steps": _positive,
        "eval_every_steps": _positive,
        "checkpoint_every_steps": _positive,
        "keep_checkpoints": _positive,
        "num_train_steps": _steps,
        "beta": _non_negative,
        "tc_estimator": _choice(lambda: TC_ESTIMATORS),
        "mi_weight": _non_negative,
        "dim_kl_weight": _non_negative,
        "tc_weight": _non_negative,
        "discriminator_learning_rate": _positive,
        "warmup_steps": _non_negative,
        "grad_clip_norm": _non_negative,
        "kl_warmup_steps": _non_negative,
        "free_bits": _non_negative,
        "num_importance_samples": _positive,
        "sparsity_weight": _non_negative,
        "contractive_weight": _non_negative,
        "noise_std": _non_negative,
        "corruption_prob": _probability,
        "dataset": _dataset,
        "data_placement": _choice(lambda: stream.PLACEMENTS),
        "dtype": _choice(lambda: models.DTYPES),
        "num_devices": _count,
        "scan_steps": _bool,
    }


def validate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Raise ConfigError on the first bad key; return the config unchanged."""
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise ConfigError(f"config lacks required keys {missing}; start from experiments/base.py")
    for key, rule in _rules().items():
        if key not in config:
            continue
        ok, allowed = rule(config[key])
        if not ok:
            raise ConfigError(f"config.{key}={config[key]!r} is not allowed: use {allowed}")
    for key in ("latent_dim", "batch_size", "num_epochs", "log_every_steps",
                "eval_every_steps", "checkpoint_every_steps"):
        if not isinstance(config[key], int):
            raise ConfigError(f"config.{key}={config[key]!r} must be an integer")
    return config
