"""Splits as the trainer and evaluation use them: uint8 images and int32 labels, whole or streamed.

`load(config, split)` reads a whole split through the array cache
(`aejax.data.arrays`), statically binarised if the config asks; `load_eval`
reads the examples runs evaluate on (the dataset's declared eval split);
`open_source` gives a split read lazily, example by example, for data that
does not fit in memory (`data_placement="stream"`).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from aejax.core.errors import ConfigError
from aejax.core.options import Option, count, one_of
from aejax.data import arrays
from aejax.data.catalog import data_source, dataset_info
from aejax.data.specs import SPECS

# `config.train_split`: what the trainer learns from. "all" is the deep-clustering
# protocol (N2D, DEC): an unsupervised model sees every image, the test split too,
# and is scored on all of them; the default keeps the test split out.
TRAIN_SPLITS = ("train", "all")

OPTIONS = {
    "data_seed": Option(0, count, "seed of the static binarisation draw (and of the evaluation draw)"),
    "train_split": Option("train", one_of(TRAIN_SPLITS),
                          "train | all (train + test: the deep-clustering protocol, e.g. experiments/n2d.py)"),
}


def _split_name(config, split: str) -> str:
    """The tfds split the trainer's "train" means: "train", or every split of the dataset."""
    if split == "train" and config.get("train_split", "train") == "all":
        return "+".join(dict(SPECS[config.dataset].splits)) if config.dataset in SPECS else "train+test"
    return split


def train_size(config) -> int:
    """How many examples the trainer's "train" split holds, from the dataset's description (nothing is loaded)."""
    sizes = dataset_info(config.dataset).splits
    return sum(int(sizes[name]) for name in _split_name(config, "train").split("+"))


def binarize_static(images: np.ndarray, seed: int) -> np.ndarray:
    """One fixed Bernoulli draw per pixel (the 'static' binarised dataset)."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(images.shape) < images / 255.0, 255, 0).astype(np.uint8)


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


def _as_split(loaded: dict[str, np.ndarray], config) -> Split:
    images = loaded["image"]
    if config.binarize == "static":
        images = binarize_static(images, seed=config.data_seed)
    return Split(images, loaded["label"].astype(np.int32))


def load(config, split: str) -> Split:
    """A split of `config.dataset` as uint8 images (statically binarised if asked) and int32 labels."""
    names = _split_name(config, split).split("+")
    loaded = [arrays.load_split(config.dataset, name, data_dir=config.data_dir or None) for name in names]
    if len(loaded) > 1:
        loaded = [{key: np.concatenate([part[key] for part in loaded]) for key in loaded[0]}]
    return _as_split(loaded[0], config)


def load_eval(config) -> Split:
    """The examples runs evaluate on: the dataset's declared eval split (aejax.data.catalog.eval_split_of)."""
    return _as_split(arrays.load_eval_split(config.dataset, data_dir=config.data_dir or None), config)


def open_source(config, split: str) -> SourceSplit:
    """A split of `config.dataset` to stream (static binarisation needs the whole split: refused)."""
    if config.binarize == "static":
        raise ConfigError("config.binarize='static' draws over the whole split, so it cannot stream: "
                          "use data_placement=device or host, or binarize=dynamic")
    source = data_source(config.dataset, _split_name(config, split), data_dir=config.data_dir or None)
    image = np.asarray(source[0]["image"])
    return SourceSplit(source, image.shape if image.ndim == 3 else (*image.shape, 1))
