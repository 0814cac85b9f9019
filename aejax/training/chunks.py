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
    (drawn on the host, each epoch once), as a host array; their last axis is
    the batch, split over `mesh`. `scan_steps`: the steps run as one loop in one
    jitted call (`PaddedChunk`: one program for every chunk length).
    Otherwise each step is its own jitted call: XLA:CPU runs convolutions inside a
    loop body ~10x slower than outside one (jax-ml/jax#12868; measured here for
    the 64x64 conv VAE: 3.5 s vs 0.4 s of CPU per step), which the Python loop
    avoids. Batches and keys are the same either way (they depend on the global
    step only); numbers may differ in the last bits.
    """
    def constrained(indices):
        return indices if mesh is None else parallel.constrain_batch(indices, mesh, batch_axis=indices.ndim - 1)

    if scan_steps:
        return PaddedChunk(one_step, constrained, mesh, donate)

    jit_step = jax.jit(lambda state, images, labels, idx: one_step(state, images, labels, constrained(idx)),
                       donate_argnums=0 if donate else ())

    def looped_chunk(state, images, labels, indices):
        metrics = []
        for step_indices in indices:
            state, step_metrics = jit_step(state, images, labels, place_indices(step_indices, mesh))
            metrics.append(step_metrics)
        return state, jax.tree_util.tree_map(lambda *values: jnp.stack(values), *metrics)

    return looped_chunk


class PaddedChunk:
    """A chunk's steps as one loop in one compiled program, which serves every chunk length.

    A run's chunks all have the same length but the last (2,340 steps in chunks
    of 100 end with 40), and each length was a program of its own: traced,
    lowered and loaded again at the end of the run (~0.3 s). Here the indices are
    padded on the host to the longest chunk called so far (`capacity`) and the
    number of steps is an argument: the program's loop runs that many and leaves
    the rest of its metrics rows zero; they are cut off before they are returned.
    The steps are the same computations as a `lax.scan`'s (tests: bit-equal).
    """

    def __init__(self, one_step, constrained, mesh=None, donate: bool = True):
        step = jax.jit(one_step, inline=True)  # traced once: for the metrics' shapes and for the loop's body

        def train_chunk(state, images, labels, indices, num_steps):
            indices = constrained(indices)
            shapes = jax.eval_shape(lambda s: step(s, images, labels, indices[0])[1], state)
            rows = jax.tree_util.tree_map(lambda m: jnp.zeros((indices.shape[0], *m.shape), m.dtype), shapes)

            def body(t, carry):
                state, rows = carry
                state, metrics = step(state, images, labels, indices[t])
                rows = jax.tree_util.tree_map(lambda all_, one: jax.lax.dynamic_update_index_in_dim(all_, one, t, 0),
                                              rows, metrics)
                return state, rows

            return jax.lax.fori_loop(0, num_steps, body, (state, rows))

        replicated = None if mesh is None else parallel.replicated(mesh)
        self._program = _jit_chunk(train_chunk, mesh, (replicated,) * 4, donate)
        self._first_rows = jax.jit(_first_rows, static_argnums=1)
        self._mesh, self.capacity = mesh, 0

    def _grow(self, num_steps: int) -> None:
        self.capacity = max(self.capacity, num_steps)

    def _padded(self, indices) -> tuple:
        """The program's (indices, num_steps) arguments for a chunk of `len(indices)` steps."""
        self._grow(indices.shape[0])
        rows = indices
        if indices.shape[0] < self.capacity:
            rows = np.zeros((self.capacity, *indices.shape[1:]), indices.dtype)
            rows[:indices.shape[0]] = indices
        return place_indices(rows, self._mesh), place_indices(np.int32(indices.shape[0]), self._mesh)

    def lower(self, state, images, labels, indices):
        """The program lowered for these arguments (arrays or shapes): `.compile()` it ahead of the first call."""
        self._grow(indices.shape[0])
        sharding = None if self._mesh is None else parallel.replicated(self._mesh)
        return self._program.lower(state, images, labels,
                                   jax.ShapeDtypeStruct((self.capacity, *indices.shape[1:]), indices.dtype,
                                                        sharding=sharding),
                                   jax.ShapeDtypeStruct((), jnp.int32, sharding=sharding))

    def __call__(self, state, images, labels, indices):
        indices = np.asarray(indices)
        state, rows = self._program(state, images, labels, *self._padded(indices))
        return state, rows if indices.shape[0] == self.capacity else self._first_rows(rows, indices.shape[0])


def _first_rows(rows, num_rows: int):
    return jax.tree_util.tree_map(lambda r: r[:num_rows], rows)


def place_indices(indices: np.ndarray, mesh=None):
    """A chunk's host indices (or step count) as its program takes them: replicated over `mesh` (every process the same)."""
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
        return self._chunk(state, self._data.images, self._data.labels,
                           self._orders.indices(first_step, num_steps))


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
