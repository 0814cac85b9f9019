"""Variants by name: `config.model` picks a model builder and its objective.

Adding a variant adds an entry (a `register` call next to its objective), not
a branch in the trainer. big_vision-style: the registry is filled when the
objective modules are imported, and is read-only afterwards.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Protocol

import flax.linen as nn
import jax
import ml_collections
import optax

Metrics = dict[str, jax.Array]


class LossFn(Protocol):
    """loss_fn(params, batch, key, step) -> (loss, metrics); pure, jit-able."""

    def __call__(self, params: Any, batch: dict[str, jax.Array], key: jax.Array,
                 step: jax.Array) -> tuple[jax.Array, Metrics]: ...


@dataclasses.dataclass(frozen=True)
class Variant:
    """Everything the trainer needs to know about one autoencoder variant.

    Attributes:
      name: the `config.model` value.
      build_model: (config, image_shape) -> flax module with `encode`/`decode`.
      make_loss: (model, config) -> training `LossFn`.
      make_eval_loss: (model, config) -> `LossFn` used on the test split; by
        default the training loss (its metrics are what eval reports).
      make_optimizer: optional (config, total_steps) -> optax transformation,
        for variants that need several optimisers (e.g. one per param
        subtree); default is the config's optimiser for all params. Its
        `init(params)` makes the optimiser state the train state holds.
      make_update: optional (model, config, total_steps) -> update(params,
        opt_state, batch, key, step) -> (params, opt_state, metrics), for
        variants whose step is several sequential updates (the reconstruction,
        discriminator and generator phases of an adversarial AE); default is
        one gradient of `make_loss` through `make_optimizer`. It must accept
        the opt_state that `make_optimizer(...).init` makes.
      probabilistic_encoder: `encode` returns (mean, logvar) rather than z.
      generative: there is a prior p(z) to sample from.
      sample_prior: optional (config, key, n) -> n codes z ~ p(z); default
        N(0, I).
      likelihood: (params, config) -> `aejax.distributions.Likelihood` of the
        decoder output, used for figures, sampling and evaluation.
      init_inputs: (config, image_batch, key) -> positional args for `init`.
    """
    name: str
    build_model: Callable[[ml_collections.ConfigDict, tuple[int, ...]], nn.Module]
    make_loss: Callable[[nn.Module, ml_collections.ConfigDict], LossFn]
    likelihood: Callable[[Any, ml_collections.ConfigDict], Any]
    init_inputs: Callable[[ml_collections.ConfigDict, jax.Array, jax.Array], tuple]
    make_eval_loss: Callable[[nn.Module, ml_collections.ConfigDict], LossFn] | None = None
    make_optimizer: Callable[[ml_collections.ConfigDict, int], optax.GradientTransformation] | None = None
    make_update: Callable[[nn.Module, ml_collections.ConfigDict, int], Callable] | None = None
    probabilistic_encoder: bool = False
    generative: bool = False
    sample_prior: Callable[[ml_collections.ConfigDict, jax.Array, int], jax.Array] | None = None


_VARIANTS: dict[str, Variant] = {}

# Modules whose import registers variants. A new family adds its module here.
VARIANT_MODULES = ("aejax.objectives.ae", "aejax.objectives.vae", "aejax.objectives.sparse",
                   "aejax.objectives.denoising", "aejax.objectives.contractive",
                   "aejax.objectives.aae", "aejax.objectives.tcvae", "aejax.objectives.factor_vae")


def register(variant: Variant) -> Variant:
    if variant.name in _VARIANTS:
        raise ValueError(f"variant {variant.name!r} is registered twice")
    _VARIANTS[variant.name] = variant
    return variant


def _import_all() -> None:
    for module in VARIANT_MODULES:
        importlib.import_module(module)


def names() -> tuple[str, ...]:
    _import_all()
    return tuple(sorted(_VARIANTS))


def get(name: str) -> Variant:
    _import_all()
    if name not in _VARIANTS:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(names())}")
    return _VARIANTS[name]
