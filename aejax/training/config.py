"""The config of a run: every part's keys collected, missing ones defaulted, values checked, fields derived.

Keys are declared next to the code that reads them (the `OPTIONS` tables of
`aejax.core.optim`, `aejax.core.parallel`, `aejax.models`, `aejax.data`,
`aejax.objectives`, this package's modules, and each variant's own
`Variant.options`); this module only collects them. A config holds the shared
keys and those of its `model`: `default_config(model)` is where experiment files
start (experiments/base.py), and a run whose model was changed by an override gets
that model's keys at their defaults.
"""
from __future__ import annotations

import ml_collections
from absl import logging

from aejax import data, models, objectives
from aejax.core import optim, parallel
from aejax.core.errors import ConfigError
from aejax.core.options import (Option, check_value, integer, merge, positive, positive_integer,
                                steps)
from aejax.training import chunks, step

# The run's own keys: its length, seed and bookkeeping.
OPTIONS = {
    "batch_size": Option(128, positive_integer, "examples per step (split over the devices)"),
    # Resumable: a run's length is judged by the num_train_steps it resolves to (aejax.training.resume).
    "num_epochs": Option(20, positive_integer, "passes over the training split, unless num_train_steps is set",
                         resumable=True),
    "num_train_steps": Option(-1, steps, "-1 = num_epochs × (train examples // batch_size)"),
    "seed": Option(0, integer, "everything random derives from it: same config + seed → same numbers"),
    # Steps run in chunks of gcd(log, eval, checkpoint) inside one compiled call,
    # so these also set how often control returns to Python.
    "log_every_steps": Option(100, positive_integer, "steps between metrics.jsonl records", resumable=True),
    "eval_every_steps": Option(1000, positive_integer, "steps between evaluations (and figures)", resumable=True),
    "checkpoint_every_steps": Option(1000, positive_integer, "steps between checkpoints", resumable=True),
    "keep_checkpoints": Option(3, positive_integer, "the latest checkpoints kept", resumable=True),
    "num_figure_images": Option(64, positive, "test images in each figure grid", resumable=True),
}

# Set by `prepare_config` from the data, never by the user.
DERIVED_KEYS = ("image_shape", "num_train_examples")


def shared_options() -> dict[str, Option]:
    """The keys every run has, whatever its model."""
    return merge(objectives.OPTIONS, models.OPTIONS, data.OPTIONS, optim.OPTIONS, parallel.OPTIONS,
                 chunks.OPTIONS, step.OPTIONS, OPTIONS)


def options_of(model: str) -> dict[str, Option]:
    """The keys a run of `model` reads: the shared ones and the variant's own."""
    return merge(shared_options(), objectives.get(model).options)


def default_config(model: str = "vae") -> ml_collections.ConfigDict:
    """Every key a run of `model` reads, at its declared default."""
    config = ml_collections.ConfigDict({name: option.default for name, option in options_of(model).items()})
    config.model = model
    return config


def declared_keys() -> set[str]:
    """Every key some part of aejax reads (of any model), and the derived ones."""
    declared = set(shared_options()) | set(DERIVED_KEYS)
    for name in objectives.names():
        declared |= set(objectives.get(name).options)
    return declared


def validate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """`config` with the missing keys of its model at their defaults; ConfigError on the first bad value."""
    check_value("model", objectives.OPTIONS["model"], config.get("model", objectives.OPTIONS["model"].default))
    completed = ml_collections.ConfigDict(config.to_dict())
    for name, option in options_of(completed.get("model", "vae")).items():
        if name not in completed:
            completed[name] = option.default
            logging.info("config.%s not set: using its default %r", name, option.default)
        check_value(name, option, completed[name])
    unknown = sorted(set(completed) - declared_keys())
    if unknown:
        logging.warning("config keys read by no part of aejax (check their spelling): %s", ", ".join(unknown))
    return completed


def prepare_config(config: ml_collections.ConfigDict, train) -> ml_collections.ConfigDict:
    """The config as the run uses it: plus fields derived from the training split `train`."""
    config = ml_collections.ConfigDict(config.to_dict())
    config.image_shape = train.image_shape
    config.num_train_examples = train.num_examples  # N of the aggregate posterior (β-TCVAE)
    if config.batch_size > train.num_examples:
        raise ConfigError(f"config.batch_size={config.batch_size} exceeds the "
                          f"{train.num_examples} training examples of {config.dataset!r}")
    steps_per_epoch = train.num_examples // config.batch_size
    if config.num_train_steps == -1:
        config.num_train_steps = config.num_epochs * steps_per_epoch
    return config
