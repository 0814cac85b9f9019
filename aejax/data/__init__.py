"""Datasets, one direction: sources (tfds builders) → cached arrays → splits → placement → batches.

The public part, for notebooks and scripts:

* ``load_split(name, split)``: a whole split as numpy arrays, ``{"image": uint8 [N, H, W, C],
  "label": int32 [N]}`` (plus the ground-truth factors for dSprites);
* ``dataset_info(name)``: shapes, split sizes and ``class_names`` (label ``i`` is
  ``class_names[i]``), without loading anything; ``KNOWN_DATASETS`` lists aejax's own.

The modules:

* `specs`: what each aejax dataset is (shapes, class names, splits, factors), without tfds;
* `builders`, `dsprites`: tfds builders of aejax's datasets from local files; the dSprites renderer;
* `catalog`: names, shapes, splits, the eval split, where data is prepared;
* `arrays`: whole splits as numpy arrays by dataset name (`load_split`), with a .npy cache;
* `splits`: a split as a config needs it (static binarisation, streaming);
* `placement`: where the training split lives (device, host, stream);
* `batches`: per-step preprocessing, the example order, host-gathered chunks.

This module only re-exports.
"""
from aejax.core.errors import ConfigError, DatasetCorruptError, DatasetNotFoundError
from aejax.core.options import merge
from aejax.data import batches, catalog, placement, specs, splits
from aejax.data.arrays import load_eval_split, load_split
from aejax.data.catalog import (KNOWN_DATASETS, DatasetInfo, cache_dir, data_source, dataset_info, eval_split_of,
                                eval_subset_indices, observe_factors)

OPTIONS = merge(catalog.OPTIONS, splits.OPTIONS, placement.OPTIONS, batches.OPTIONS)

__all__ = ["KNOWN_DATASETS", "OPTIONS", "ConfigError", "DatasetCorruptError", "DatasetInfo", "DatasetNotFoundError",
           "cache_dir", "data_source", "dataset_info", "eval_split_of", "eval_subset_indices", "load_eval_split",
           "load_split", "observe_factors", "specs"]
