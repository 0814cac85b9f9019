"""The training state: one pytree, everything a step needs, nothing hidden; and how it starts."""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging

from aejax import objectives
from aejax.core import optim
from aejax.core.errors import ConfigError
from aejax.models import initialization


@flax.struct.dataclass
class TrainState:
    step: jax.Array        # int32 scalar: number of updates applied
    params: Any
    opt_state: Any
    rng: jax.Array         # raw uint32 key; step keys are fold_in(rng, step)


def shape_signature(tree: Any) -> dict[str, list[int]]:
    """{path: shape} of a pytree: what must match for a checkpoint to fit."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {jax.tree_util.keystr(path): list(getattr(leaf, "shape", ())) for path, leaf in leaves}


def variant_optimizer(variant, config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
    """The variant's own optimiser (several players), else the config's for every parameter."""
    if variant.make_optimizer is not None:
        return variant.make_optimizer(config, total_steps)
    return optim.make_optimizer(config, total_steps)


def make_initializer(config, variant, model, optimizer):
    """The compiled `init(key) -> TrainState`: params from one half of `key`, the other half drives every step.

    One compiled call: run op by op, the initialisers compile dozens of tiny
    programs (most of a small run's start-up). The same bits either way. One
    function for a run, so that `jax.eval_shape(init, key)` (the state's shapes,
    needed before it exists) and `init(key)` share one trace.
    """
    def init(key):
        init_key, rng = jax.random.split(key)
        sample = jnp.zeros((2, *config.image_shape), jnp.float32)
        params_key, dummy_key = jax.random.split(init_key)
        params = model.init(params_key, *variant.init_inputs(config, sample, dummy_key))
        params = initialization.initialize(params, config.get("param_init", "flax"),
                                           jax.random.fold_in(params_key, 1))
        return TrainState(step=jnp.asarray(0, jnp.int32), params=params,
                          opt_state=optimizer.init(params), rng=rng)

    return jax.jit(init)


def create_train_state(config, variant, model, optimizer, key) -> TrainState:
    """The initial state of `key` (`make_initializer`, called once)."""
    return make_initializer(config, variant, model, optimizer)(key)


def abstract_train_state(config: ml_collections.ConfigDict) -> TrainState:
    """Shapes and dtypes of the train state of `config`, without computing it."""
    variant = objectives.get(config.model)
    model = variant.build_model(config, tuple(config.image_shape))
    optimizer = variant_optimizer(variant, config, total_steps=1)
    return jax.eval_shape(
        lambda key: create_train_state(config, variant, model, optimizer, key),
        jax.random.PRNGKey(0))


def state_bytes(abstract_state: TrainState) -> tuple[int, int, int]:
    """(parameter count, bytes of the params, bytes of the whole state) of a state's shapes."""
    num_params = sum(int(x.size) for x in jax.tree_util.tree_leaves(abstract_state.params))
    params = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(abstract_state.params))
    total = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(abstract_state))
    return num_params, int(params), int(total)


def check_memory(config, abstract_state: TrainState, device_memory: int, device: str,
                 warn_above: int = 2**30) -> None:
    """Before allocating: the parameter count and memory of a step; ConfigError if it cannot fit.

    A step holds the state plus about two more copies of the params (gradients
    and updates); activations come on top. More than `device_memory` is refused;
    more than `warn_above` or a quarter of it is a warning.
    """
    num_params, params, total = state_bytes(abstract_state)
    step = total + 2 * params
    size = (f"model {config.model!r} has {num_params:,} parameters: its train state takes "
            f"{total / 2**30:.2f} GiB and a step about {step / 2**30:.2f} GiB "
            f"(of {device_memory / 2**30:.1f} GiB on {device})")
    if step > device_memory:
        raise ConfigError(f"{size}; it cannot fit: make the model smaller (latent_dim, hidden_dims, "
                          "conv_channels, ...)")
    if step > min(warn_above, device_memory // 4):
        logging.warning("%s", size)
    else:
        logging.info("%s", size)
