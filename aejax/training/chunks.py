"""Compiled chunks of training steps, and how their batches reach them (the placements' feeds).

A chunk of steps runs as one `lax.scan` inside one jitted call, with the state
donated: one dispatch per chunk. On the device path the batches of the chunk are
gathered inside the call from the whole split, by indices drawn on the host
(`aejax.data.batches.EpochOrders`); on the host paths they arrive gathered
(`aejax.data.batches.HostBatches`). Either way the batch of step t depends only
on (seed, t).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from aejax.core import parallel
from aejax.core.options import Option, boolean
from aejax.data import batches
from aejax.data.placement import put_on_device
from aejax.training.state import TrainState
from aejax.training.step import make_batch_step, permutation_key

OPTIONS = {
    "scan_steps": Option(True, boolean, "chunks of steps as one lax.scan; False: a jitted call per step "
                                        "(conv models on CPU: XLA:CPU convs in loops are ~10x slower)", resumable=True),
}


def _jit_chunk(chunk, mesh, data_shardings, donate: bool = True, **kwargs):
    donate_argnums = 0 if donate else ()
    if mesh is None:
        return jax.jit(chunk, donate_argnums=donate_argnums, **kwargs)
    replicated = parallel.replicated(mesh)
    return jax.jit(chunk, donate_argnums=donate_argnums, in_shardings=(replicated, *data_shardings),
                   out_shardings=(replicated, replicated), **kwargs)


def make_one_step(train_step, config, mesh=None):
    """one_step(state, images, labels, indices [batch]) → (state, metrics): one step on the batch of
    those rows of the whole split, gathered on the device. A population vmaps it over its members."""
    batch_step = make_batch_step(train_step, config, mesh)

    def one_step(state: TrainState, images, labels, batch_indices):
        # Rows of flat images: a gather of contiguous rows is ~9× cheaper on CPU than of [H, W, C] slices.
        flat = images.reshape(images.shape[0], -1)
        batch_images = flat[batch_indices].reshape(-1, *images.shape[1:])
        return batch_step(state, batch_images, labels[batch_indices])

    return one_step


def compile_chunk(one_step, scan_steps: bool, mesh=None, donate: bool = True):
    """(state, images, labels, indices [num_steps, ..., batch]) → (state, per-step metrics) from a one_step.

    The indices of a chunk's steps come from `aejax.data.batches.EpochOrders`
    (drawn on the host, each epoch once); their last axis is the batch, split
    over `mesh`. `scan_steps`: the steps run as one `lax.scan` in one jitted call.
    Otherwise each step is its own jitted call: XLA:CPU runs convolutions inside a
    loop body ~10x slower than outside one (jax-ml/jax#12868; measured here for
    the 64x64 conv VAE: 3.5 s vs 0.4 s of CPU per step), which the Python loop
    avoids. Batches and keys are the same either way (they depend on the global
    step only); numbers may differ in the last bits.
    """
    def constrained(indices):
        return indices if mesh is None else parallel.constrain_batch(indices, mesh, batch_axis=indices.ndim - 1)

    def train_chunk(state, images, labels, indices):
        return jax.lax.scan(lambda s, idx: one_step(s, images, labels, idx), state, constrained(indices))

    if scan_steps:
        replicated = None if mesh is None else parallel.replicated(mesh)
        return _jit_chunk(train_chunk, mesh, (replicated, replicated, replicated), donate)

    jit_step = jax.jit(lambda state, images, labels, idx: one_step(state, images, labels, constrained(idx)),
                       donate_argnums=0 if donate else ())

    def looped_chunk(state, images, labels, indices):
        metrics = []
        for step_indices in indices:
            state, step_metrics = jit_step(state, images, labels, step_indices)
            metrics.append(step_metrics)
        return state, jax.tree_util.tree_map(lambda *values: jnp.stack(values), *metrics)

    return looped_chunk


def place_indices(indices: np.ndarray, mesh=None):
    """A chunk's host indices as its program takes them: replicated over `mesh` (every process the same)."""
    return indices if mesh is None else jax.device_put(indices, parallel.replicated(mesh))


def make_train_chunk(train_step, config, mesh=None):
    """Jitted (state, images, labels, indices [num_steps, batch]) → (state, per-step metrics).

    The batches of the chunk's steps are gathered on the device (from the whole
    split, replicated on every device of `mesh`) by the `indices` of
    `EpochOrders.indices(first_step, num_steps)`, and the steps run as one
    `lax.scan` (or, with `config.scan_steps = False`, as one jitted call each;
    see `compile_chunk`).
    """
    return compile_chunk(make_one_step(train_step, config, mesh), config.get("scan_steps", True), mesh)


def make_batches_chunk(train_step, config, mesh=None):
    """Jitted (state, images [steps, batch, ...], labels [steps, batch]) → (state, metrics).

    The same steps as `make_train_chunk`, on batches gathered beforehand
    (on the host: `aejax.data.batches.HostBatches`), split over `mesh`.
    """
    batch_step = make_batch_step(train_step, config, mesh)

    def train_chunk(state: TrainState, images, labels):
        return jax.lax.scan(lambda state, batch: batch_step(state, *batch), state, (images, labels))

    sharding = None if mesh is None else parallel.batch_sharding(mesh, batch_axis=1)
    return _jit_chunk(train_chunk, mesh, (sharding, sharding))


class DeviceFeed:
    """Chunks on the device path: the whole split on every device, each chunk's batches gathered in the call."""

    def __init__(self, train_step, config, train, mesh):
        self._data = put_on_device(train, parallel.replicated(mesh))
        self._batch_size, self._mesh = config.batch_size, mesh
        self._chunk = make_train_chunk(train_step, config, mesh)
        self._orders = None

    def compile(self, state_shapes: TrainState, num_steps: int) -> None:
        """Compiles the program of a `num_steps` chunk from the state's shapes alone (before the state exists).

        XLA compiles without holding Python's lock: in a thread, this overlaps
        the compile of the initial state's program. The first call then finds
        the compiled program (tests/training/test_startup.py counts compiles).
        """
        batches.EpochOrders.compile(jax.eval_shape(permutation_key, state_shapes.rng), self._data.num_examples)
        if hasattr(self._chunk, "lower"):  # a jitted call per step (scan_steps=False) compiles as it goes
            sharding = None if self._mesh is None else parallel.replicated(self._mesh)
            indices = jax.ShapeDtypeStruct((num_steps, self._batch_size), jnp.int32, sharding=sharding)
            self._chunk.lower(state_shapes, self._data.images, self._data.labels, indices).compile()

    def start(self, state: TrainState, schedule) -> None:
        """Starts drawing the first chunk's epoch order from the state's permutation key (the batch of step t
        depends on (seed, t)), while the evaluation's programs compile."""
        key = np.asarray(permutation_key(parallel.local_copy(state.rng)))
        self._orders = batches.EpochOrders(key, self._data.num_examples, self._batch_size)
        if schedule:
            self._orders.prefetch(schedule[0][0] // (self._data.num_examples // self._batch_size))

    def __call__(self, state, first_step: int, num_steps: int):
        indices = place_indices(self._orders.indices(first_step, num_steps), self._mesh)
        return self._chunk(state, self._data.images, self._data.labels, indices)


class HostFeed:
    """Chunks on the host and stream paths: batches gathered on the host ahead of the loop (`HostBatches`)."""

    def __init__(self, train_step, config, train, mesh):
        self._train, self._batch_size, self._mesh = train, config.batch_size, mesh
        self._chunk = make_batches_chunk(train_step, config, mesh)
        self._batches = None

    def compile(self, state_shapes: TrainState, num_steps: int) -> None:
        del state_shapes, num_steps  # compiled at the first call (these paths serve large data: it is a small part)

    def start(self, state: TrainState, schedule) -> None:
        """Starts reading the chunks of `schedule` (the permutation's key is the state's)."""
        key = np.asarray(permutation_key(parallel.local_copy(state.rng)))
        self._batches = batches.HostBatches(self._train, key, self._batch_size, self._mesh, schedule)

    def __call__(self, state, first_step: int, num_steps: int):
        del num_steps
        batch = self._batches.next(first_step)
        return self._chunk(state, batch["images"], batch["labels"])


# data_placement → the feed: built before the state (`compile`), started with it (`start`), then
# `feed(state, first_step, num_steps) -> (state, metrics)` for each chunk of the schedule.
FEEDS = {"device": DeviceFeed, "host": HostFeed, "stream": HostFeed}


def state_shapes(abstract_state: TrainState, sharding) -> TrainState:
    """The state's shapes and dtypes placed with `sharding`: what a program is compiled for before the state exists."""
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding, weak_type=x.weak_type), abstract_state)


def chunk_schedule(first_step: int, total_steps: int, chunk: int) -> list[tuple[int, int]]:
    """(first step, number of steps) of each compiled call from `first_step` on."""
    return [(s, min(chunk, total_steps - s)) for s in range(first_step, total_steps, chunk)]
