"""Whole splits as numpy arrays, by dataset name; a ``.npy`` cache next to the tfds files.

tfds decodes one example at a time (about a minute for the 737,280 dSprites
images), so the first load of a whole split of an aejax dataset also writes it as
``.npy`` arrays next to the tfds files (``<builder>/<version>/arrays/<split>/``;
0/255 images bit-packed, 377 MB for dSprites), which later loads read in seconds
(memory-mapped, so subsets read only their rows). The cache is written into a
temporary sibling and renamed, under the builder's lock, so readers never see
half of one; a cache damaged later (a truncated ``.npy``) is named in a warning
and rebuilt from the tfds files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
from absl import logging

from aejax.core.errors import ConfigError
from aejax.data.catalog import cache_dir, eval_split_of, eval_subset_indices, exclusive, open_source
from aejax.data.specs import SPECS

_ARRAY_KEYS = ("image", "label", "factors", "factor_values")  # what load_split returns, when present
_READ_CHUNK = 8192  # examples decoded per data-source call (bounds temporary memory)
_ARRAYS_DIR = "arrays"  # next to a builder's tfds files: <root>/<builder>/<version>/arrays/<split>/
_ARRAYS_FORMAT = 1  # bump when the array cache layout changes


def load_split(name: str, split: str, *, data_dir: str | None = None,
               indices: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """All examples of one split of a dataset, as numpy arrays in the dataset's fixed order.

    Returns a dict:

    * ``"image"``: uint8 ``[N, H, W, C]``, 0..255 (what ``aejax.load(...).encode`` takes);
    * ``"label"``: int32 ``[N]``, the class of each image; its names are
      ``aejax.data.dataset_info(name).class_names`` (Fashion-MNIST: "T-shirt/top", ...);
    * dSprites only: ``"factors"`` int64 ``[N, 5]`` (indices into the factor grid) and
      ``"factor_values"`` float32 ``[N, 5]``.

    ``name`` is one of ``KNOWN_DATASETS`` (or a tfds catalog name); ``split`` is one of
    ``dataset_info(name).splits`` ("train", "test"), and may use tfds slicing
    (``"train[:10%]"``). ``indices`` (sorted) keeps only those examples of the split.
    The first use prepares the dataset (once, under a lock); later loads read a
    ``.npy`` cache in well under a second, without importing tfds.

    >>> test = load_split("fashion_mnist", "test")
    >>> test["image"].shape, test["label"][:3]
    ((10000, 28, 28, 1), array([9, 2, 1], dtype=int32))
    """
    if name in SPECS and split.split("[")[0] not in dict(SPECS[name].splits):
        raise ConfigError(f"{name} has no split {split!r}; its splits are "
                          f"{', '.join(dict(SPECS[name].splits))}")
    root = cache_dir(data_dir)
    if name in SPECS and re.fullmatch(r"\w+", split):
        arrays = _cached_arrays(root, name, split, indices)
    else:
        arrays = _read_all(open_source(root, name, split), indices)
    image = arrays["image"]
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: images are {image.dtype}, only uint8 images are supported")
    if image.ndim == 3:
        arrays["image"] = image[..., None]
    if "label" in arrays:
        arrays["label"] = arrays["label"].astype(np.int32)
    return arrays


def load_eval_split(name: str, *, data_dir: str | None = None) -> dict[str, np.ndarray]:
    """The examples a run evaluates on (see ``eval_split_of``), as ``load_split`` returns them."""
    split, subset = eval_split_of(name)
    if not subset:
        return load_split(name, split, data_dir=data_dir)
    size = dict(SPECS[name].splits)[split]
    return load_split(name, split, data_dir=data_dir, indices=eval_subset_indices(size, subset))


# ---------------------------------------------------------------------------- array cache

def derived_dir(name: str, what: str, data_dir: str | None = None) -> Path:
    """Where data derived from an aejax dataset live: next to its tfds files, ``<builder>/<version>/<what>``.

    A new dataset version (``aejax.data.specs``) starts with none: what was derived from the old one is left alone.
    """
    spec = SPECS[name]
    return cache_dir(data_dir) / spec.tfds_name / spec.version / what


def arrays_dir(name: str, split: str, data_dir: str | None = None) -> Path:
    """Where the array cache of a split lives (``image.npy``, ``label.npy``, ...): written by its first `load_split`."""
    return _arrays_dir(cache_dir(data_dir), name, split)


def _arrays_dir(root: Path, name: str, split: str) -> Path:
    spec = SPECS[name]
    return root / spec.tfds_name / spec.version / _ARRAYS_DIR / split


class _DamagedCache(Exception):
    """A file of the array cache cannot be read as written (truncated, edited, an old format)."""


def _cached_arrays(root: Path, name: str, split: str, indices: np.ndarray | None) -> dict[str, np.ndarray]:
    """A whole split of an aejax dataset from its .npy cache, written first if missing or damaged."""
    directory = _arrays_dir(root, name, split)
    if (directory / "meta.json").is_file():
        try:
            return _read_arrays(directory, indices)
        except _DamagedCache as error:
            logging.warning("the array cache %s; rebuilding it from the prepared dataset", error)
    with exclusive(root, f"{SPECS[name].tfds_name}-{_ARRAYS_DIR}"):
        if (directory / "meta.json").is_file():  # another process may have rebuilt it meanwhile
            try:
                return _read_arrays(directory, indices)
            except _DamagedCache:
                shutil.rmtree(directory)
        arrays = _read_all(open_source(root, name, split))
        _write_arrays(directory, arrays)
        return arrays if indices is None else {k: v[indices] for k, v in arrays.items()}


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
    try:
        meta = json.loads((directory / "meta.json").read_text())
        if meta["format"] != _ARRAYS_FORMAT:
            raise _DamagedCache(f"{directory} has format {meta['format']}, this version reads {_ARRAYS_FORMAT}")
        keys = meta["keys"]
    except (OSError, ValueError, KeyError) as error:
        raise _DamagedCache(f"{directory / 'meta.json'} cannot be read ({error})") from None
    arrays, rows = {}, 0
    for key in keys:
        try:
            values = np.load(directory / f"{key}.npy", mmap_mode="r")
        except (OSError, ValueError, EOFError) as error:  # e.g. truncated: "mmap length is greater than file size"
            raise _DamagedCache(f"{directory / f'{key}.npy'} is damaged ({error})") from None
        rows = rows if arrays else len(values)
        if len(values) != rows:
            raise _DamagedCache(f"{directory / f'{key}.npy'} has {len(values)} rows, {keys[0]}.npy {rows}")
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
