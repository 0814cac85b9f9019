"""A function over fixed-size batches of a host array: one compiled shape, bounded memory."""
from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np


def map_batches(fn: Callable[[np.ndarray, int], Any], x: np.ndarray, batch_size: int,
                progress: Any = None) -> Any:
    """fn(batch, index) over batches of x (the last one padded: one compiled shape), concatenated.

    `progress`, if given, is told `update(batches done)` after each batch.
    """
    n = len(x)
    outputs = []
    for i, start in enumerate(range(0, n, batch_size)):
        batch = x[start:start + batch_size]
        size = len(batch)
        if size < batch_size:
            batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - size, axis=0)])
        out = jax.device_get(fn(batch, i))
        outputs.append(jax.tree_util.tree_map(lambda a, size=size: np.asarray(a)[:size], out))
        if progress is not None:
            progress.update(i + 1)
    return jax.tree_util.tree_map(lambda *parts: np.concatenate(parts), *outputs)
