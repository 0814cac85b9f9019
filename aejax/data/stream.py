"""Where the training split lives, and batches gathered on the host when not on the device.

`config.data_placement` picks one of

* ``device``: the whole split on every device, batches gathered inside the
  compiled chunk (`aejax.data.pipeline`); the fastest when it fits;
* ``host``: the whole split in host memory; each chunk's batches are gathered
  on the host and sent to the devices;
* ``stream``: nothing read whole: each batch is read from the tfds data
  source (array_record, random access) when needed, so a split larger than
  host or device memory trains too;
* ``auto``: ``device`` if one process runs and the split takes at most
  `DEVICE_FRACTION` of a device's memory, else ``host`` if it takes at most
  `HOST_FRACTION` of host memory, else ``stream``.

The host paths draw the same example indices as the device path
(`pipeline.batch_indices` of the same key and steps), so every placement
trains on the same batches and reaches the same parameters. Each process
reads only the part of each global batch that its own devices hold, and
grain threads read the next chunks while the devices compute.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import grain
import jax
import numpy as np

from aejax import data as datasets
from aejax import parallel
from aejax.data import pipeline

PLACEMENTS = ("auto", "device", "host", "stream")
DEVICE_FRACTION = 0.25   # of a device's memory the training split may take (activations need the rest)
HOST_FRACTION = 0.25     # of host memory


@dataclasses.dataclass(frozen=True)
class SourceSplit:
    """One split read lazily from a tfds data source; `read` fetches examples by index."""
    source: Any
    image_shape: tuple[int, ...]

    @property
    def num_examples(self) -> int:
        return len(self.source)

    def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        examples = self.source.__getitems__([int(i) for i in indices])
        images = np.stack([example["image"] for example in examples]).reshape(-1, *self.image_shape)
        labels = np.asarray([example["label"] for example in examples], np.int32)
        return images, labels


def open_split(config, split: str) -> SourceSplit:
    """A split of `config.dataset` to stream (static binarisation needs the whole split: refused)."""
    from aejax.config_validation import ConfigError
    if config.binarize == "static":
        raise ConfigError("config.binarize='static' draws over the whole split, so it cannot stream: "
                          "use data_placement=device or host, or binarize=dynamic")
    source = datasets.data_source(config.dataset, split, data_dir=config.data_dir or None)
    image = np.asarray(source[0]["image"])
    return SourceSplit(source, image.shape if image.ndim == 3 else (*image.shape, 1))


def _host_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def device_memory_bytes(device) -> int:
    """Memory of one device (host memory for CPU devices, which report none)."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    return int(stats["bytes_limit"]) if stats and "bytes_limit" in stats else _host_memory_bytes()


def choose_placement(config, mesh) -> str:
    """`config.data_placement`, with ``auto`` resolved from the split's size and the memories."""
    if config.data_placement != "auto":
        return config.data_placement
    info = datasets.dataset_info(config.dataset)
    if any(d is None for d in info.image_shape) or "train" not in info.splits:
        return "device" if jax.process_count() == 1 else "host"
    num_bytes = info.splits["train"] * int(np.prod(info.image_shape))  # uint8 images
    if jax.process_count() == 1 and num_bytes <= DEVICE_FRACTION * device_memory_bytes(mesh.devices.flat[0]):
        return "device"
    return "host" if num_bytes <= HOST_FRACTION * _host_memory_bytes() else "stream"


def load_train_split(config, placement: str):
    """The training split as the placement needs it: numpy arrays, or a lazy source."""
    return open_split(config, "train") if placement == "stream" else pipeline.load_split(config, "train")


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
        cpu = jax.local_devices(backend="cpu")[0]
        self._key = jax.device_put(permutation_key, cpu)
        self._indices = jax.jit(pipeline.batch_indices, static_argnums=(2, 3, 4))
        chunks = grain.MapDataset.source(list(schedule)).map(self._read_chunk)
        self._chunks = iter(chunks.to_iter_dataset(
            grain.ReadOptions(num_threads=1, prefetch_buffer_size=prefetch)))

    def _read_chunk(self, chunk: tuple[int, int]) -> dict[str, np.ndarray]:
        first_step, num_steps = chunk
        indices = np.asarray(self._indices(self._key, first_step, num_steps,
                                           self._split.num_examples, self._batch_size))
        indices = indices[:, self._columns]
        images, labels = self._split.read(indices.reshape(-1))
        return {"first_step": first_step,
                "images": images.reshape(*indices.shape, *images.shape[1:]),
                "labels": labels.reshape(indices.shape)}

    def next(self, first_step: int) -> dict[str, jax.Array]:
        chunk = next(self._chunks)
        if chunk.pop("first_step") != first_step:
            raise RuntimeError("the host batches are out of step with the training loop")
        return parallel.global_batches(self._mesh, chunk, self._batch_size)
