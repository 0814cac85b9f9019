"""Populations: runs that differ only in numbers the train step reads, trained as one program.

A population stacks its members' train states on a leading axis, keeps one copy
of the data and runs in one process. On an accelerator the shared train step runs
under `jax.vmap`: one compiled chunk for every member, each member's varying
numbers traced (`MemberConfig`). On a CPU, where a vmapped step is no faster, the
members run side by side, each its own run's compiled chunk (`build_program`).
Either way a member reads the data in the order, and draws the keys, of the
separate run with its config (its batch indices come from its own permutation
key, its step keys from its own rng): side by side it is that run bit for bit,
vmapped to float tolerance (a batched matmul may round differently; see the README).

Which runs can share a program is decided from the code, not from a list:

* the keys the loop and the data pipeline read (those declared by
  `aejax.training` and `aejax.data`) must be equal, except `seed`, which only
  picks a member's initial key; so must every value that is not a number;
* any other key that differs is handed to the step as a traced per-member number
  (`MemberConfig`). If building the step cannot take it traced (it sets a shape,
  like `latent_dim`, or Python branches on it, like `warmup_steps`), the runs are
  split by its value (`split_into_populations`).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from aejax import data, objectives
from aejax.core import parallel
from aejax.data import batches, splits
from aejax.data.catalog import dataset_info
from aejax.training import chunks
from aejax.training import config as run_config
from aejax.training import step as step_module
from aejax.training.state import create_train_state, variant_optimizer
from aejax.training.step import (eval_key, eval_parts, eval_pass, make_evaluate, make_train_step, make_update,
                                 mean_over_parts, permutation_key)

SEED = "seed"  # differs freely: it only picks a member's initial key


class MemberConfig:
    """A member's config inside the population's compiled functions: its own (traced) number for each key
    that varies across the population, the shared value of every other key."""

    def __init__(self, config: ml_collections.ConfigDict, values: Mapping[str, Any]):
        self._config, self._values = config, dict(values)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._values[name] if name in self._values else getattr(self._config, name)

    def __getitem__(self, name: str):
        return self._values[name] if name in self._values else self._config[name]

    def __contains__(self, name: str) -> bool:
        return name in self._values or name in self._config

    def get(self, name: str, default=None):
        return self._values[name] if name in self._values else self._config.get(name, default)


def loop_keys() -> frozenset[str]:
    """Keys read outside the train step (by the loop, the data pipeline, the mesh): equal within a population."""
    declared = (run_config.OPTIONS, chunks.OPTIONS, step_module.OPTIONS, data.OPTIONS, parallel.OPTIONS)
    return frozenset(key for table in declared for key in table) - {SEED}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def varying_keys(configs: Sequence[ml_collections.ConfigDict]) -> list[str]:
    """The numeric keys other than the seed whose values differ between `configs`, sorted."""
    keys = sorted(set().union(*(set(c) for c in configs)) - {SEED})
    return [k for k in keys if len({json.dumps(c.get(k)) for c in configs}) > 1]


def member_values(configs: Sequence[ml_collections.ConfigDict], keys: Sequence[str]) -> dict[str, np.ndarray]:
    """{key: [M] array of the members' values}, float32 unless every value is an integer."""
    values = {}
    for key in keys:
        column = [c[key] for c in configs]
        dtype = np.int32 if all(isinstance(v, int) for v in column) else np.float32
        values[key] = np.asarray(column, dtype)
    return values


def _with_data_fields(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The fields `prepare_config` derives from the data, from the dataset's description (nothing is loaded)."""
    info = dataset_info(config.dataset)
    config = ml_collections.ConfigDict(config.to_dict())
    config.image_shape = tuple(info.image_shape)
    config.num_train_examples = splits.train_size(config)
    if config.num_train_steps == -1:
        config.num_train_steps = config.num_epochs * (config.num_train_examples // config.batch_size)
    return config


def member_model(config, values):
    """(variant, model, optimizer, member config) of one member, built inside a traced function."""
    member = MemberConfig(config, values)
    variant = objectives.get(config.model)
    model = variant.build_model(member, tuple(config.image_shape))
    return variant, model, variant_optimizer(variant, member, config.num_train_steps), member


def _member_train_step(config, values):
    variant, model, optimizer, member = member_model(config, values)
    return make_train_step(make_update(variant, model, member, optimizer, config.num_train_steps)), member


def _traces(config: ml_collections.ConfigDict, key: str) -> bool:
    """Whether the train step, the eval loss and the initial state build with `key` as a traced number."""
    batch = config.batch_size

    def probe(value):
        values = {key: value}
        variant, model, optimizer, member = member_model(config, values)
        state = create_train_state(member, variant, model, optimizer, jax.random.PRNGKey(0))
        train_step, member = _member_train_step(config, values)
        one_step = chunks.make_one_step(train_step, member)
        images = jnp.zeros((batch, *config.image_shape), jnp.uint8)
        labels = jnp.zeros((batch,), jnp.int32)
        state, metrics = one_step(state, images, labels, jnp.arange(batch))
        eval_loss = (variant.make_eval_loss or variant.make_loss)(model, member)
        return metrics, eval_pass(eval_loss, config.binarize)(state.params, images[None], labels[None],
                                                              jax.random.PRNGKey(0), state.step)

    dtype = jnp.int32 if isinstance(config[key], int) else jnp.float32
    try:
        jax.eval_shape(probe, jax.ShapeDtypeStruct((), dtype))
    except Exception as error:  # noqa: BLE001 — any failure to trace means: not a per-member number
        logging.debug("config.%s cannot vary within a population: %s", key, str(error).splitlines()[0])
        return False
    return True


def split_into_populations(configs: Sequence[ml_collections.ConfigDict]) -> list[list[int]]:
    """Indices of the `configs` that can train as one program, each list in order, lists by first member."""
    configs = [_with_data_fields(run_config.validate(c)) for c in configs]
    fixed = loop_keys() | {k for c in configs for k, v in c.items() if not _is_number(v)}

    def signature(index: int, keys) -> str:
        return json.dumps({k: configs[index].get(k) for k in sorted(keys)}, default=str)

    groups: dict[str, list[int]] = {}
    for i in range(len(configs)):
        groups.setdefault(signature(i, fixed), []).append(i)
    populations: list[list[int]] = []
    for group in groups.values():
        varying = varying_keys([configs[i] for i in group])
        static = [k for k in varying if not _traces(configs[group[0]], k)]
        split: dict[str, list[int]] = {}
        for i in group:
            split.setdefault(signature(i, static), []).append(i)
        populations += split.values()
    return sorted(populations, key=lambda members: members[0])


def stack(trees: Sequence[Any]) -> Any:
    """Member pytrees → one pytree with a leading member axis."""
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def member(tree: Any, index: int) -> Any:
    """Member `index` of a stacked pytree."""
    return jax.tree_util.tree_map(lambda leaf: leaf[index], tree)


class MemberOrders:
    """Each member's batch indices, from its own permutation key: the separate run's data order.

    Members with the same seed share one key and so one `EpochOrders` (each
    epoch's permutation drawn once for all of them).
    """

    def __init__(self, rngs, num_examples: int, batch_size: int):
        keys = np.asarray(jax.vmap(permutation_key)(jnp.asarray(rngs)))
        shared: dict[bytes, batches.EpochOrders] = {}
        self._orders = [shared.setdefault(key.tobytes(), batches.EpochOrders(key, num_examples, batch_size))
                        for key in keys]

    def indices(self, first_step: int, num_steps: int) -> np.ndarray:
        """[M, num_steps, batch] example indices of global steps first_step + i, member by member."""
        return np.stack([orders.indices(first_step, num_steps) for orders in self._orders])


@dataclasses.dataclass(frozen=True)
class Program:
    """The compiled functions of a population, each over all members at once.

    init(values, keys [M]) → stacked initial states; chunk(states, images, labels,
    indices [M, steps, batch] (`MemberOrders`), active) → (states, metrics [steps,
    M, ...]), where only the `active` members train (the others keep their state;
    their metrics are NaN);
    evaluate(params, split, rngs, steps) → metrics [M, ...] averaged over the
    split; `values` holds each varying key's [M] numbers.
    """
    config: ml_collections.ConfigDict
    values: dict[str, jax.Array]
    init: Callable
    chunk: Callable
    evaluate: Callable


def build_program(configs: Sequence[ml_collections.ConfigDict], mesh=None,
                  vectorize: bool | None = None) -> Program:
    """The population's compiled functions; `configs` are the members' prepared configs (one population).

    `vectorize` (default: on an accelerator) runs the members as one vmapped
    program, each member's varying numbers traced: one wide program that keeps an
    accelerator busy, equal to the separate runs to float tolerance (a batched
    matmul rounds differently, and training amplifies it: README). Otherwise (a
    CPU) the members run side by side, each its own run's compiled chunk with its
    own config in one process over one copy of the data: bit-equal to the separate
    runs, at a separate run's speed per core (a vmapped step was no faster on CPU,
    and a loop over members inside one program 20% slower: README).
    """
    if vectorize is None:
        vectorize = jax.default_backend() != "cpu"
    return (_vectorized if vectorize else _side_by_side)(list(configs), mesh)


@jax.jit
def keep_inactive(active, new_states, old_states):
    """Each member's new state where it trained this chunk, its old one where it waited."""
    def select(new, old):
        return jnp.where(active.reshape(-1, *([1] * (new.ndim - 1))), new, old)
    return jax.tree_util.tree_map(select, new_states, old_states)


def _side_by_side(configs, mesh) -> Program:
    """Each member its own run's functions (concrete config), called in turn in one process."""
    runs = []
    for config in configs:
        variant = objectives.get(config.model)
        model = variant.build_model(config, tuple(config.image_shape))
        optimizer = variant_optimizer(variant, config, config.num_train_steps)
        train_step = make_train_step(make_update(variant, model, config, optimizer, config.num_train_steps))
        runs.append((variant, model, optimizer,
                     chunks.make_train_chunk(train_step, config, mesh),
                     make_evaluate((variant.make_eval_loss or variant.make_loss)(model, config), config)))

    def init(values, keys):
        del values
        return stack([create_train_state(config, variant, model, optimizer, keys[i])
                      for i, (config, (variant, model, optimizer, _, _)) in enumerate(zip(configs, runs))])

    def chunk(states, images, labels, indices, active):
        outputs = [runs[i][3](member(states, i), images, labels, indices[i])
                   if active[i] else None
                   for i in range(len(runs))]
        done = next(out for out in outputs if out is not None)
        nan = jax.tree_util.tree_map(lambda m: jnp.full_like(m, jnp.nan, dtype=jnp.float32), done[1])
        new_states = stack([out[0] if out else member(states, i) for i, out in enumerate(outputs)])
        metrics = jax.tree_util.tree_map(lambda *m: jnp.stack(m, axis=1), *[out[1] if out else nan for out in outputs])
        return new_states, metrics

    def evaluate(params, split, rngs, steps) -> dict[str, np.ndarray]:
        results = [runs[i][4](member(params, i), split, rngs[i], steps[i]) for i in range(len(runs))]
        return {k: np.stack([r[k] for r in results]) for k in results[0]}

    return Program(configs[0], {}, init, chunk, evaluate)


def _vectorized(configs, mesh) -> Program:
    """One vmapped program; the members' varying numbers are traced (MemberConfig)."""
    config = configs[0]
    values = {k: jnp.asarray(v) for k, v in member_values(configs, varying_keys(configs)).items()}

    def init_member(member_values, key):
        variant, model, optimizer, member_config = member_model(config, member_values)
        return create_train_state(member_config, variant, model, optimizer, key)

    def member_step(member_values):
        train_step, member_config = _member_train_step(config, member_values)
        return chunks.make_one_step(train_step, member_config, mesh)

    def one_step(carry, images, labels, indices):
        states, values = carry
        states, metrics = jax.vmap(lambda state, v, i: member_step(v)(state, images, labels, i))(
            states, values, indices)
        return (states, values), metrics

    compiled = chunks.compile_chunk(one_step, config.get("scan_steps", True), mesh, donate=False)

    def chunk(states, images, labels, indices, active):
        indices = np.swapaxes(indices, 0, 1)  # [steps, M, batch]: a loop over steps
        (new_states, _), metrics = compiled((states, values), images, labels, indices)
        return keep_inactive(jnp.asarray(active), new_states, states), metrics

    def eval_member(params, member_values, images, labels, key, step):
        variant, model, _, member_config = member_model(config, member_values)
        eval_loss = (variant.make_eval_loss or variant.make_loss)(model, member_config)
        return eval_pass(eval_loss, config.binarize)(params, images, labels, key, step)

    evaluate_batches = jax.jit(jax.vmap(eval_member, in_axes=(0, 0, None, None, 0, 0)))

    def evaluate(params, split, rngs, steps) -> dict[str, np.ndarray]:
        parts = eval_parts(split, config.eval_batch_size)
        results = [jax.device_get(evaluate_batches(params, values, images, labels,
                                                   jax.vmap(lambda rng: eval_key(rng, first))(rngs), steps))
                   for images, labels, first in parts]
        return mean_over_parts(results, parts, batch_axis=1)

    return Program(config, values, jax.jit(jax.vmap(init_member)), chunk, evaluate)
