"""Device-resident input pipeline.

Datasets that fit in device memory are put there once as uint8. Each epoch is
a fresh permutation drawn from a JAX key, and the batches of a whole chunk of
steps are gathered inside the jitted training call (a `lax.scan`), so the
host never touches a batch. Batch composition depends only on (data key,
global step): resuming from any step replays exactly the same batches.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from aejax import data as datasets


def _dynamic(key, x):
    return jax.random.bernoulli(key, x).astype(x.dtype)


# Per-step transforms of images already scaled to [0, 1]. "static" data is
# binarised once at load (see `binarize_static`), so it needs nothing here;
# "dynamic" resamples a binary image every step with the step's key.
BINARIZATIONS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "none": lambda key, x: x,
    "static": lambda key, x: x,
    "dynamic": _dynamic,
}


def binarize_static(images: np.ndarray, seed: int) -> np.ndarray:
    """One fixed Bernoulli draw per pixel (the 'static' binarised dataset)."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(images.shape) < images / 255.0, 255, 0).astype(np.uint8)


def to_unit_interval(images: jax.Array) -> jax.Array:
    return images.astype(jnp.float32) / 255.0


def preprocess(images: jax.Array, key: jax.Array, binarize: str) -> jax.Array:
    """uint8 images → float32 in [0, 1], binarised per `binarize`."""
    return BINARIZATIONS[binarize](key, to_unit_interval(images))


@dataclasses.dataclass(frozen=True)
class Split:
    """One split held as arrays (numpy on the host or jax on a device)."""
    images: np.ndarray | jax.Array
    labels: np.ndarray | jax.Array

    @property
    def num_examples(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Examples by index (the host-gathered placements read batches this way)."""
        return self.images[indices], self.labels[indices]


def load_split(config, split: str) -> Split:
    """A split as uint8 images (statically binarised if asked) and int32 labels."""
    return _as_split(datasets.load_split(config.dataset, split, data_dir=config.data_dir or None), config)


def _as_split(arrays, config) -> Split:
    images = arrays["image"]
    if config.binarize == "static":
        images = binarize_static(images, seed=config.data_seed)
    return Split(images, arrays["label"].astype(np.int32))


def load_eval_split(config) -> Split:
    """The examples runs evaluate on: the dataset's declared eval split (aejax.data.eval_split_of)."""
    arrays = datasets.load_eval_split(config.dataset, data_dir=config.data_dir or None)
    return _as_split(arrays, config)


def put_on_device(split: Split, sharding=None) -> Split:
    return Split(jax.device_put(split.images, sharding), jax.device_put(split.labels, sharding))


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
