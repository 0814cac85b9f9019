"""Where the training split lives: `config.data_placement` picks one of

* ``device``: the whole split on every device, batches gathered inside the
  compiled chunk (`aejax.training.chunks`); the fastest when it fits;
* ``host``: the whole split in host memory; each chunk's batches are gathered
  on the host and sent to the devices (`aejax.data.batches.HostBatches`);
* ``stream``: nothing read whole: each batch is read from the tfds data
  source (array_record, random access) when needed, so a split larger than
  host or device memory trains too;
* ``auto``: ``device`` if one process runs and the split takes at most
  `DEVICE_FRACTION` of a device's memory, else ``host`` if it takes at most
  `HOST_FRACTION` of host memory, else ``stream``.
"""
from __future__ import annotations

import os

import jax
import numpy as np

from aejax.core.options import Option, one_of
from aejax.data import splits
from aejax.data.catalog import dataset_info

PLACEMENTS = ("auto", "device", "host", "stream")
DEVICE_FRACTION = 0.25   # of a device's memory the training split may take (activations need the rest)
HOST_FRACTION = 0.25     # of host memory

OPTIONS = {
    "data_placement": Option("auto", one_of(PLACEMENTS), "auto | device | host | stream", resumable=True),
}


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
    info = dataset_info(config.dataset)
    if any(d is None for d in info.image_shape) or "train" not in info.splits:
        return "device" if jax.process_count() == 1 else "host"
    num_bytes = info.splits["train"] * int(np.prod(info.image_shape))  # uint8 images
    if jax.process_count() == 1 and num_bytes <= DEVICE_FRACTION * device_memory_bytes(mesh.devices.flat[0]):
        return "device"
    return "host" if num_bytes <= HOST_FRACTION * _host_memory_bytes() else "stream"


def load_train_split(config, placement: str):
    """The training split as the placement needs it: numpy arrays, or a lazy source."""
    return splits.open_source(config, "train") if placement == "stream" else splits.load(config, "train")


def put_on_device(split: splits.Split, sharding=None) -> splits.Split:
    return splits.Split(jax.device_put(split.images, sharding), jax.device_put(split.labels, sharding))
