"""Batches: images scaled and binarised per step, the order of examples, and host-gathered chunks.

Batch composition depends only on (data key, global step): `batch_indices`
draws epoch e's order as permutation(fold_in(key, e)), so resuming from any
step replays exactly the same batches, and every placement (device, host,
stream) trains on the same ones. `EpochOrders` gives the same indices for a
chunk of steps, drawing each epoch's permutation once. On the device the
batches of a whole chunk of steps are gathered inside the jitted training call
(`aejax.training.chunks`); `HostBatches` gathers the same indices on the host
for the host and stream placements, each process reading only the part of each
global batch its own devices hold, with grain threads reading the next chunks
while the devices compute.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import threefry2x32_p

from aejax.core import parallel
from aejax.core.options import Option, one_of


# A 32-bit word below k·this is a pixel of grey level k drawn as 1 (255 divides 2³² − 1).
_WORD_PER_GREY_LEVEL = (2 ** 32 - 1) // 255  # 16,843,009


def bernoulli_pixels(key: jax.Array, images: jax.Array) -> jax.Array:
    """Dynamic binarisation: uint8 images [B, ...] → float32 0/1 with P(1) = k/255 for a pixel of value k.

    Half the threefry blocks of `jax.random.bernoulli` (the step's largest cost
    after its matmuls): one block gives two 32-bit words and both are used, one
    per pixel, where jax.random draws a block per pixel. A pixel is 1 when its
    word is below k·(2³² − 1)/255 (an integer: 255 divides 2³² − 1), so
    P(1) = (k/255)(1 − 2⁻³²), and exactly 1 for k = 255. Blocks are counted by
    (example, pixel pair), elementwise, so a batch split over devices draws
    its own part and every example's noise depends only on its position.
    """
    key = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    flat = images.reshape(images.shape[0] if images.ndim > 1 else 1, -1)
    rows, pixels = flat.shape
    pairs = (pixels + 1) // 2

    def draw_words(key):
        example = jax.lax.broadcasted_iota(jnp.uint32, (rows, pairs), 0)
        pair = jax.lax.broadcasted_iota(jnp.uint32, (rows, pairs), 1)
        return jnp.stack(threefry2x32_p.bind(key[0], key[1], example, pair), axis=-1)

    words = stored_apart(draw_words, key).reshape(rows, 2 * pairs)[:, :pixels]
    ones = (words < flat.astype(jnp.uint32) * jnp.uint32(_WORD_PER_GREY_LEVEL)) | (flat == 255)
    return ones.astype(jnp.float32).reshape(images.shape)


def stored_apart(draw: Callable[[jax.Array], jax.Array], key: jax.Array) -> jax.Array:
    """draw(key), computed and stored on its own: never fused into the loops that read it.

    XLA fuses cheap-looking elementwise work into every loop that reads it. For
    `bernoulli_pixels`' threefry blocks that is twice the work: fused into a
    per-pixel loop, each block is computed once for each of its two words
    (XLA:CPU: 0.85 ms a step instead of 0.13). XLA does not fuse across a
    conditional, so the draw runs inside one whose two branches are the same
    draw (the predicate only has to be unknown when compiling). Under `jax.vmap`
    (a vectorised population) a batched predicate would turn the conditional into
    a select of both branches, so the batched rule keeps one predicate for all.
    """
    @jax.custom_batching.custom_vmap
    def drawn(key):
        return jax.lax.cond(key[0] < key[1], draw, draw, key)

    @drawn.def_vmap
    def drawn_batched(axis_size, in_batched, keys):
        del axis_size, in_batched  # `drawn` has one argument, so its rule runs only when it is batched
        flat = keys.reshape(-1)
        return jax.lax.cond(flat[0] < flat[1], jax.vmap(draw), jax.vmap(draw), keys), True

    return drawn(key)


# Which per-step dynamic draw a run's steps used, kept in each checkpoint's metadata, so a run
# resumed by a version that draws otherwise says so (`aejax.training.resume.draw_changes`).
TRAINING_DRAW = "bernoulli_pixels: both words of each threefry block"
DRAW_METADATA_KEY = "binarization_draw"
EARLIER_DRAW = "jax.random.bernoulli: one uniform per pixel"  # aejax before 2026-12-03 (metadata without the key)

# Per-step transforms of uint8 images to float32 in [0, 1]. "static" data is
# binarised once at load (`aejax.data.splits.binarize_static`), so it needs
# nothing here; "dynamic" resamples a binary image every step with the step's key.
BINARIZATIONS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "none": lambda key, images: to_unit_interval(images),
    "static": lambda key, images: to_unit_interval(images),
    "dynamic": bernoulli_pixels,
}

OPTIONS = {
    "binarize": Option("dynamic", one_of(BINARIZATIONS),
                       "none | static (one fixed draw) | dynamic (resampled every step)"),
}


def to_unit_interval(images: jax.Array) -> jax.Array:
    return images.astype(jnp.float32) / 255.0


def preprocess(images: jax.Array, key: jax.Array, binarize: str) -> jax.Array:
    """uint8 images → float32 in [0, 1], binarised per `binarize`: the training step's draw."""
    return BINARIZATIONS[binarize](key, images)


def preprocess_eval(images: jax.Array, key: jax.Array, binarize: str) -> jax.Array:
    """As `preprocess`, but a dynamic draw is `jax.random.bernoulli`'s (one uniform per pixel).

    Evaluation data stay the draw every eval figure was measured on, so scores
    compare across versions; only training's per-step noise takes the cheaper
    `bernoulli_pixels` (the same distribution, other bits).
    """
    x = to_unit_interval(images)
    return jax.random.bernoulli(key, x).astype(x.dtype) if binarize == "dynamic" else x


def batch_indices(data_key: jax.Array, first_step: jax.Array, num_steps: int,
                  num_examples: int, batch_size: int) -> jax.Array:
    """Example indices [num_steps, batch_size] of global steps first_step + i.

    Epoch e uses permutation(fold_in(data_key, e)); the last partial batch of an
    epoch is dropped so every step sees a full batch. Jit-able: only the
    permutations of the epochs the chunk spans are drawn.
    """
    steps_per_epoch = num_examples // batch_size
    num_epochs_spanned = num_steps // steps_per_epoch + 2
    first_epoch = first_step // steps_per_epoch
    last_epoch = (first_step + num_steps - 1) // steps_per_epoch

    def epoch_order(epoch):
        # A permutation is a sort (costly on CPU): draw only those of epochs the chunk spans.
        perm = jax.lax.cond(
            epoch <= last_epoch,
            lambda: jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples),
            lambda: jnp.zeros(num_examples, jnp.int32))
        return perm[:steps_per_epoch * batch_size].reshape(steps_per_epoch, batch_size)

    orders = jax.lax.map(epoch_order, first_epoch + jnp.arange(num_epochs_spanned))
    steps = first_step + jnp.arange(num_steps)
    return orders[steps // steps_per_epoch - first_epoch, steps % steps_per_epoch]


@functools.partial(jax.jit, static_argnums=2)
def epoch_permutation(data_key: jax.Array, epoch: jax.Array, num_examples: int) -> jax.Array:
    """The order of epoch `epoch`'s examples: the one `batch_indices` draws."""
    return jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples)


class EpochOrders:
    """The batch indices of any chunk of steps (those of `batch_indices`), each epoch's permutation drawn once.

    A permutation is a sort: ~35 ms for 60,000 examples on a CPU core (0.6 s for
    dSprites' 737,280). Drawn inside every chunk (the epochs it spans), it cost
    the canonical VAE 0.74 of 5.1 ms a step with 100-step chunks on 2 cores
    (the bench's profile section: the other core waited); here each
    epoch's order is drawn once, on the host's CPU device (the same bits on
    every backend), and the latest `keep` epochs are kept (a memo of a pure
    function of (key, epoch): the indices do not depend on which chunks asked
    before). A chunk's indices are a host array [num_steps, batch_size].
    """

    def __init__(self, data_key, num_examples: int, batch_size: int, keep: int = 2):
        if num_examples < batch_size:
            raise ValueError(f"{num_examples} examples make no batch of {batch_size}: lower config.batch_size")
        self._key = jax.device_put(np.asarray(data_key), self.device())
        self._num_examples, self._batch_size, self._keep = num_examples, batch_size, keep
        self._steps_per_epoch = num_examples // batch_size
        self._orders: dict[int, jax.Array | np.ndarray] = {}

    @staticmethod
    def device():
        """Where the permutations are drawn: the host's CPU device, on every backend."""
        return jax.local_devices(backend="cpu")[0]

    @classmethod
    def compile(cls, data_key_shape: jax.ShapeDtypeStruct, num_examples: int) -> None:
        """Compiles the permutation's program ahead (in the trainer's compile thread), from the key's shape."""
        sharding = jax.sharding.SingleDeviceSharding(cls.device())
        key = jax.ShapeDtypeStruct(data_key_shape.shape, data_key_shape.dtype, sharding=sharding)
        epoch_permutation.lower(key, jax.ShapeDtypeStruct((), jnp.int32), num_examples).compile()

    def prefetch(self, epoch: int) -> None:
        """Starts drawing epoch `epoch`'s order (dispatched: it runs while the caller goes on)."""
        if epoch not in self._orders:
            while len(self._orders) >= self._keep:
                del self._orders[min(self._orders)]
            self._orders[epoch] = epoch_permutation(self._key, np.int32(epoch), self._num_examples)

    def epoch(self, epoch: int) -> np.ndarray:
        """Epoch `epoch`'s batches of example indices [steps_per_epoch, batch_size] (the partial batch dropped)."""
        self.prefetch(epoch)
        order = self._orders[epoch]
        if not isinstance(order, np.ndarray):
            order = np.asarray(order)[:self._steps_per_epoch * self._batch_size].reshape(
                self._steps_per_epoch, self._batch_size)
            self._orders[epoch] = order
        return order

    def indices(self, first_step: int, num_steps: int) -> np.ndarray:
        """Example indices [num_steps, batch_size] of global steps first_step + i."""
        steps = np.arange(first_step, first_step + num_steps)
        epochs = steps // self._steps_per_epoch
        out = np.empty((num_steps, self._batch_size), np.int32)
        for epoch in np.unique(epochs):
            rows = epochs == epoch
            out[rows] = self.epoch(int(epoch))[steps[rows] % self._steps_per_epoch]
        return out


class HostBatches:
    """Chunks of global batches gathered on the host, in a fixed schedule of steps.

    `schedule` lists the (first_step, num_steps) of every chunk the loop will
    run; `next(first_step)` returns that chunk's batches as global arrays
    {"images": [num_steps, batch, ...], "labels": [num_steps, batch]} split
    over the mesh's data axis.
    """

    def __init__(self, split, permutation_key, batch_size: int, mesh,
                 schedule: Sequence[tuple[int, int]], prefetch: int = 2):
        self._split, self._batch_size, self._mesh = split, batch_size, mesh
        self._columns = parallel.process_batch_slice(mesh, batch_size)
        self._orders = EpochOrders(permutation_key, split.num_examples, batch_size)
        import grain  # only the host and stream placements need it (its import takes a quarter second)
        chunks = grain.MapDataset.source(list(schedule)).map(self._read_chunk)
        self._chunks = iter(chunks.to_iter_dataset(
            grain.ReadOptions(num_threads=1, prefetch_buffer_size=prefetch)))

    def _read_chunk(self, chunk: tuple[int, int]) -> dict[str, np.ndarray]:
        first_step, num_steps = chunk
        indices = self._orders.indices(first_step, num_steps)[:, self._columns]
        images, labels = self._split.read(indices.reshape(-1))
        return {"first_step": first_step,
                "images": images.reshape(*indices.shape, *images.shape[1:]),
                "labels": labels.reshape(indices.shape)}

    def next(self, first_step: int) -> dict[str, jax.Array]:
        chunk = next(self._chunks)
        if chunk.pop("first_step") != first_step:
            raise RuntimeError("the host batches are out of step with the training loop")
        return parallel.global_batches(self._mesh, chunk, self._batch_size)
