"""Two settings that make the train step faster on CPU; applied when aejax is imported.

Both are pure speed: the numbers computed are the same. Neither can touch another
platform: the flag is one of XLA's CPU compiler flags, and the lowering is
registered for platform "cpu" only (tests/core/test_cpu_tuning.py), so GPU and TPU
programs compile as jax ships them.

* `--xla_cpu_experimental_ynn_fusion_type=dot`: XLA:CPU hands whole fusions
  (dots, elementwise, reductions) to the YNNPACK library by default. Its
  reductions over image-shaped [B, H, W, 1] tensors are pathologically slow
  (the train step's reconstruction metrics took 2–3 ms of a 7 ms step on a
  2-core EPYC); with this flag YNNPACK keeps only the matmuls and XLA's own
  loop fusions do the rest (~0.15 ms). Set only when the user's XLA_FLAGS do
  not mention the option, and only takes effect if no JAX backend started yet.
* Threefry PRNG unrolled on CPU: jax lowers threefry2x32 on CPU as a rolled
  5-iteration loop (smaller programs, each round a separate pass over memory);
  the unrolled form, jax's default on other platforms, fuses into one pass and
  halves the cost of the step's random bits (dynamic binarisation draws one
  per pixel). Same bits. Uses jax internals: skipped if they moved.
"""
from __future__ import annotations

import logging
import os

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type=dot"


def set_xla_flags() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if "ynn_fusion_type" not in flags:
        # In front: a non-"--" token in XLA_FLAGS stops XLA parsing what follows it.
        os.environ["XLA_FLAGS"] = f"{YNN_FLAG} {flags}".strip()


def unroll_threefry_on_cpu() -> None:
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32
        mlir.register_lowering(threefry2x32.threefry2x32_p, threefry2x32._threefry2x32_lowering_rule,
                               platform="cpu")
    except (ImportError, AttributeError) as error:  # a jax without these internals: keep its default
        logging.getLogger(__name__).debug("threefry stays rolled on CPU: %s", error)


def apply() -> None:
    set_xla_flags()
    unroll_threefry_on_cpu()
