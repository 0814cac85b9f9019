"""Three settings that make the train step faster on CPU; applied when aejax is imported.

All are pure speed: the numbers computed are the same. None can touch another
platform: the flags are XLA's CPU compiler flags, and the lowering is registered
for platform "cpu" only (tests/core/test_cpu_tuning.py), so GPU and TPU programs
compile as jax ships them. Each flag is set only when the user's XLA_FLAGS do
not mention its option, and only takes effect if no JAX backend started yet.

* `--xla_cpu_experimental_ynn_fusion_type=dot`: XLA:CPU hands whole fusions
  (dots, elementwise, reductions) to the YNNPACK library by default. Its
  reductions over image-shaped [B, H, W, 1] tensors are pathologically slow
  (the train step's reconstruction metrics took 2–3 ms of a 7 ms step on a
  2-core EPYC); with this flag YNNPACK keeps only the matmuls and XLA's own
  loop fusions do the rest (~0.15 ms).
* `--xla_cpu_copy_insertion_use_region_analysis=true`: in a loop of steps
  (the trainer's chunk), XLA:CPU's default copy insertion copied, at the start
  of each step, the weights the backward pass reads for g·Wᵀ (1.25 MB for the
  VAE's 400×784 decoder weight) and two biases, so that the optimiser could
  write the new values in place; its region-based analysis finds those copies needless and
  drops them (the compiled chunk's loop body has none left: tested).
* Threefry PRNG unrolled on CPU: jax lowers threefry2x32 on CPU as a rolled
  5-iteration loop (smaller programs, each round a separate pass over memory);
  the unrolled form, jax's default on other platforms, fuses into one pass and
  halves the cost of the step's random bits (dynamic binarisation draws one
  per pixel). Same bits. jax builds its unrolled form by tracing the 20 rounds
  as jnp operations and lowering that trace, ~30 ms of Python per draw in a
  program (a run's start lowers ~20: parameter init, the step, the evaluation);
  `_threefry2x32_unrolled` writes the same StableHLO operations directly, in
  ~2 ms (a tenth). Uses jax internals: skipped if they moved.
"""
from __future__ import annotations

import logging
import os

import numpy as np

# option → its value: set unless the user's XLA_FLAGS name the option.
XLA_CPU_FLAGS = {"xla_cpu_experimental_ynn_fusion_type": "dot",
                 "xla_cpu_copy_insertion_use_region_analysis": "true"}


def set_xla_flags() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    added = [f"--{option}={value}" for option, value in XLA_CPU_FLAGS.items() if option not in flags]
    # In front: a non-"--" token in XLA_FLAGS stops XLA parsing what follows it.
    os.environ["XLA_FLAGS"] = " ".join([*added, flags]).strip()


# Threefry-2x32 (Salmon et al. 2011, 20 rounds): the rotation of each round, in groups of four; after
# group g the key schedule adds ks[(g + 1) % 3] to the first word and ks[(g + 2) % 3] + g + 1 to the second.
THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
THREEFRY_PARITY = 0x1BD11BDA


def _threefry2x32_unrolled(ctx, key1, key2, count1, count2):
    """Lowering of jax's threefry2x32 primitive: the 20 rounds as StableHLO, emitted directly."""
    from jax._src.interpreters import mlir
    from jax._src.lib.mlir.dialects import hlo

    aval_out = ctx.avals_out[0]
    rank = len(aval_out.shape)
    if 0 in aval_out.shape:
        zeros = mlir.full_like_aval(ctx, 0, aval_out)
        return [zeros, zeros]

    def full(value, aval):  # an operand broadcast to the output's shape, as the primitive broadcasts
        return mlir.broadcast_in_dim(ctx, value, aval_out, broadcast_dimensions=range(rank - len(aval.shape), rank))

    constants = {}

    def const(value: int):
        if value not in constants:
            constants[value] = mlir.broadcast_in_dim(ctx, mlir.ir_constant(np.uint32(value)), aval_out,
                                                     broadcast_dimensions=())
        return constants[value]

    k1, k2, c1, c2 = (full(v, a) for v, a in zip((key1, key2, count1, count2), ctx.avals_in))
    ks = (k1, k2, hlo.xor(hlo.xor(k1, k2), const(THREEFRY_PARITY)))
    x0, x1 = hlo.add(c1, ks[0]), hlo.add(c2, ks[1])
    for group in range(5):
        for rotation in THREEFRY_ROTATIONS[group % 2]:
            x0 = hlo.add(x0, x1)
            rotated = hlo.or_(hlo.shift_left(x1, const(rotation)), hlo.shift_right_logical(x1, const(32 - rotation)))
            x1 = hlo.xor(x0, rotated)
        x0 = hlo.add(x0, ks[(group + 1) % 3])
        x1 = hlo.add(hlo.add(x1, ks[(group + 2) % 3]), const(group + 1))
    return [x0, x1]


def unroll_threefry_on_cpu() -> None:
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32
        mlir.register_lowering(threefry2x32.threefry2x32_p, _threefry2x32_unrolled, platform="cpu")
    except (ImportError, AttributeError) as error:  # a jax without these internals: keep its default
        logging.getLogger(__name__).debug("threefry stays rolled on CPU: %s", error)


def apply() -> None:
    set_xla_flags()
    unroll_threefry_on_cpu()
