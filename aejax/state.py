"""The training state: one pytree, everything a step needs, nothing hidden."""
from __future__ import annotations

from typing import Any

import flax.struct
import jax


@flax.struct.dataclass
class TrainState:
    step: jax.Array        # int32 scalar: number of updates applied
    params: Any
    opt_state: Any
    rng: jax.Array         # raw uint32 key; step keys are fold_in(rng, step)


def shape_signature(tree: Any) -> dict[str, list[int]]:
    """{path: shape} of a pytree: what must match for a checkpoint to fit."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {jax.tree_util.keystr(path): list(getattr(leaf, "shape", ())) for path, leaf in leaves}
