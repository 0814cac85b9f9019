"""Compiled chunks of training steps, and how their batches reach them (the placements' feeds).

A chunk of steps runs as one `lax.scan` inside one jitted call, with the state
donated: one dispatch per chunk. On the device path the batches of the chunk are
gathered inside the call from the whole split; on the host paths they arrive
gathered (`aejax.data.batches.HostBatches`). Either way the batch of step t
depends only on (seed, t).
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


def chunk_parts(train_step, config, num_examples: int, mesh=None):
    """(chunk_indices, one_step) of a run: the batch indices of a chunk's steps, and one step on its batch.

    chunk_indices(state, num_steps) → indices [num_steps, batch]; one_step(state,
    images, labels, indices [batch]) → (state, metrics), gathering the batch from
    the whole split on the device. A population vmaps both over its members.
    """
    batch_size = config.batch_size
    batch_step = make_batch_step(train_step, config, mesh)

    def chunk_indices(state: TrainState, num_steps: int):
        indices = batches.batch_indices(permutation_key(state.rng), state.step, num_steps,
                                         num_examples, batch_size)
        if mesh is not None:
            indices = parallel.constrain_batch(indices, mesh, batch_axis=1)
        return indices

    def one_step(state: TrainState, images, labels, batch_indices):
        # Rows of flat images: a gather of contiguous rows is ~9× cheaper on CPU than of [H, W, C] slices.
        flat = images.reshape(images.shape[0], -1)
        batch_images = flat[batch_indices].reshape(-1, *images.shape[1:])
        return batch_step(state, batch_images, labels[batch_indices])

    return chunk_indices, one_step


def compile_chunk(chunk_indices, one_step, scan_steps: bool, mesh=None, donate: bool = True):
    """(state, images, labels, num_steps) → (state, per-step metrics) from a run's (or population's) parts.

    `scan_steps`: the steps run as one `lax.scan` in one jitted call. Otherwise the
    chunk's batch indices are computed in one call and each step is its own jitted
    call: XLA:CPU runs convolutions inside a loop body ~10x slower than outside one
    (jax-ml/jax#12868; measured here for the 64x64 conv VAE: 3.5 s vs 0.4 s of CPU
    per step), which the Python loop avoids. Batches and keys are the same either
    way (they depend on the global step only); numbers may differ in the last bits.
    """
    def train_chunk(state, images, labels, num_steps: int):
        return jax.lax.scan(lambda s, idx: one_step(s, images, labels, idx), state,
                            chunk_indices(state, num_steps))

    if scan_steps:
        replicated = None if mesh is None else parallel.replicated(mesh)
        return _jit_chunk(train_chunk, mesh, (replicated, replicated), donate, static_argnums=3)

    jit_indices = jax.jit(chunk_indices, static_argnums=1)
    jit_step = jax.jit(one_step, donate_argnums=0 if donate else ())

    def looped_chunk(state, images, labels, num_steps: int):
        indices, metrics = jit_indices(state, num_steps), []
        for step_indices in indices:
            state, step_metrics = jit_step(state, images, labels, step_indices)
            metrics.append(step_metrics)
        return state, jax.tree_util.tree_map(lambda *values: jnp.stack(values), *metrics)

    return looped_chunk


def make_train_chunk(train_step, config, num_examples: int, mesh=None):
    """Jitted (state, images, labels, num_steps) → (state, per-step metrics).

    The batches of `num_steps` consecutive steps are gathered on the device
    (from the whole split, replicated on every device of `mesh`) and the
    steps run as one `lax.scan` (or, with `config.scan_steps = False`, as one
    jitted call each; see `compile_chunk`).
    """
    chunk_indices, one_step = chunk_parts(train_step, config, num_examples, mesh)
    return compile_chunk(chunk_indices, one_step, config.get("scan_steps", True), mesh)


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
        self._chunk = make_train_chunk(train_step, config, train.num_examples, mesh)

    def compile(self, state_shapes: TrainState, num_steps: int) -> None:
        """Compiles the program of a `num_steps` chunk from the state's shapes alone (before the state exists).

        XLA compiles without holding Python's lock: in a thread, this overlaps
        the compile of the initial state's program. The first call then finds
        the compiled program (tests/training/test_startup.py counts compiles).
        """
        if hasattr(self._chunk, "lower"):  # a jitted call per step (scan_steps=False) compiles as it goes
            self._chunk.lower(state_shapes, self._data.images, self._data.labels, num_steps).compile()

    def start(self, state: TrainState, schedule) -> None:
        del state, schedule  # the batch of step t depends on (seed, t) only, gathered inside the call

    def __call__(self, state, first_step: int, num_steps: int):
        return self._chunk(state, self._data.images, self._data.labels, num_steps)


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
