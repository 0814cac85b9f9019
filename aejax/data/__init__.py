"""Datasets, one direction: sources (tfds builders) → cached arrays → splits → placement → batches.

* `builders`, `dsprites`: tfds builders of aejax's datasets from local files;
* `catalog`: names, shapes, splits, the eval split, where data is prepared;
* `arrays`: whole splits as numpy arrays by dataset name (`load_split`), with a .npy cache;
* `splits`: a split as a config needs it (static binarisation, streaming);
* `placement`: where the training split lives (device, host, stream);
* `batches`: per-step preprocessing, the example order, host-gathered chunks.

This module only re-exports.
"""
from aejax.core.errors import DatasetCorruptError, DatasetNotFoundError
from aejax.core.options import merge
from aejax.data import batches, catalog, placement, splits
from aejax.data.arrays import load_eval_split, load_split
from aejax.data.catalog import (KNOWN_DATASETS, DatasetInfo, cache_dir, data_source, dataset_info, eval_split_of,
                                eval_subset_indices, observe_factors)

OPTIONS = merge(catalog.OPTIONS, splits.OPTIONS, placement.OPTIONS, batches.OPTIONS)

__all__ = ["KNOWN_DATASETS", "OPTIONS", "DatasetCorruptError", "DatasetInfo", "DatasetNotFoundError", "cache_dir",
           "data_source",
           "dataset_info", "eval_split_of", "eval_subset_indices", "load_eval_split", "load_split",
           "observe_factors"]
