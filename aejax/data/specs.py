"""What each of aejax's own datasets is, without tfds: shapes, class names, splits, factors, eval split.

Reading a prepared dataset's array cache needs only this (`aejax.data.arrays`), so
a run whose data are cached never imports tfds; the tfds builders
(`aejax.data.builders`) take their descriptions from here and are imported only
to prepare a dataset. Bump a dataset's ``version`` when its stored examples change:
the old cache is then left alone and a new one is prepared.
"""
from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Callable

import numpy as np

from aejax.data.dsprites import DSPRITES_GRID, DSPRITES_SMALL_GRID, FACTOR_NAMES, SHAPE_NAMES, SpriteGrid


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One of aejax's datasets as tfds stores it (``tfds_name``/``version``) and as runs use it."""

    tfds_name: str  # aejax_ prefix: never clashes with tfds's own catalog (fashion_mnist, dsprites)
    version: str
    image_shape: tuple[int, int, int]  # (H, W, C), uint8
    class_names: tuple[str, ...]  # of the int label, in label order
    splits: tuple[tuple[str, int], ...]  # (split, number of examples), checked when preparing
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    eval_split: str = "test"  # what runs evaluate on (aejax.data.eval_split_of)
    eval_subset: int = 0  # > 0: a fixed random subset of eval_split of this size
    grid: SpriteGrid | None = None  # dSprites: the factor grid the images are rendered from

    @property
    def observe(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """factor indices [N, K] → the uint8 images stored for them; None without factors."""
        return None if self.grid is None else self.grid.render


_DIGIT_NAMES = tuple(str(d) for d in range(10))

SPECS: MappingProxyType[str, DatasetSpec] = MappingProxyType({
    "fashion_mnist": DatasetSpec(
        "aejax_fashion_mnist", "1.0.0", (28, 28, 1),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        (("train", 60_000), ("test", 10_000))),
    "mnist_5k": DatasetSpec("aejax_mnist_5k", "1.0.0", (28, 28, 1), _DIGIT_NAMES, (("train", 4_000), ("test", 1_000))),
    "digits": DatasetSpec("aejax_digits", "1.0.0", (8, 8, 1), _DIGIT_NAMES, (("train", 1_438), ("test", 359))),
    "dsprites": DatasetSpec(
        "aejax_dsprites", "1.0.0", (64, 64, 1), SHAPE_NAMES, (("train", DSPRITES_GRID.num_examples),),
        FACTOR_NAMES, DSPRITES_GRID.sizes, "train", 5_000, DSPRITES_GRID),
    "dsprites_small": DatasetSpec(
        "aejax_dsprites_small", "1.0.0", (64, 64, 1), SHAPE_NAMES, (("train", DSPRITES_SMALL_GRID.num_examples),),
        FACTOR_NAMES, DSPRITES_SMALL_GRID.sizes, "train", 2_000, DSPRITES_SMALL_GRID),
})
