"""The bench's `kernels` section: where the trainer's compiled step spends its time, kernel by kernel.

XLA:CPU runs a compiled program as a sequence of kernels (loop fusions, matmuls,
copies). Compiled with `xla_cpu_enable_xprof_traceme` (a compile option of this one
program: no other program changes), each kernel is an event in jax's profiler trace.
The section compiles the trainer's chunk of the canonical VAE that way, traces
`--repeats` chunks of `--steps` steps, and prints the kernels by time per step with
their result shapes and the operation each comes from (the HLO's op_name): how the
image-shaped per-pixel loops were found (`aejax.core.distributions.flat_pixels`).
Kernels may overlap (the two cores run independent ones at once), so their sum can
exceed the step's wall time. CPU only: other backends name their kernels otherwise.
"""
from __future__ import annotations

import collections
import glob
import gzip
import json
import re
import tempfile

from aejax.studies.bench.harness import BenchOptions, base_config, block, epoch_orders, make_setup

TOP = 15
_INSTRUCTION = re.compile(r"\s*(?:ROOT )?%([\w.-]+) = (\S+)")
_OP_NAME = re.compile(r'op_name="([^"]*)"')


def _short_op(op_name: str) -> str:
    """'jit(train_chunk)/while/body/transpose(jvp(VAE))/VAE.decode/decoder/MLP_0/dense_1/dot_general' →
    'backward decoder/MLP_0/dense_1/dot_general': the module path, and whether it is the backward pass."""
    parts = [p for p in op_name.split("/") if p not in ("while", "body", "closed_call") and "(" not in p
             and "." not in p]
    return ("backward " if "transpose(" in op_name else "") + "/".join(parts[-4:])


def _instructions(hlo: str) -> dict[str, tuple[str, str]]:
    """HLO instruction name → (result shape, the last parts of its op_name)."""
    found = {}
    for line in hlo.splitlines():
        instruction = _INSTRUCTION.match(line)
        if instruction:
            op_name = _OP_NAME.search(line)
            found[instruction.group(1)] = (re.sub(r"\{[\d,]*\}", "", instruction.group(2)),
                                           _short_op(op_name.group(1) if op_name else ""))
    return found


def _kernel_microseconds(trace_dir: str, names) -> collections.Counter:
    """Total duration (µs) of each named kernel in the Perfetto trace under `trace_dir`."""
    paths = glob.glob(f"{trace_dir}/**/perfetto_trace.json.gz", recursive=True)
    if not paths:
        raise RuntimeError(f"jax.profiler wrote no Perfetto trace under {trace_dir}: this jax cannot trace kernels")
    with gzip.open(paths[0]) as file:
        trace = json.load(file)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    total = collections.Counter()
    for event in events:
        if event.get("ph") == "X" and event.get("name") in names:
            total[event["name"]] += event.get("dur", 0)
    return total


def section_kernels(ctx, options: BenchOptions) -> dict:
    import jax
    import numpy as np
    from aejax.training.chunks import make_train_chunk
    if jax.default_backend() != "cpu":
        return {"skipped": f"kernel traces are read for XLA:CPU only (backend: {jax.default_backend()})"}
    setup = make_setup(base_config(options, "vae"), ctx["train"])
    data, steps = ctx["train_device"], options.steps
    state = setup.init()
    indices = epoch_orders(setup, data, state).indices(0, steps)
    compiled = make_train_chunk(setup.train_step, setup.config).lower(
        state, data.images, data.labels, indices).compile(compiler_options={"xla_cpu_enable_xprof_traceme": True})
    instructions = _instructions(compiled.as_text())

    def run(state):
        state, metrics = compiled(state, data.images, data.labels, indices, np.int32(steps))
        block(metrics)
        return state

    state = run(state)  # warm-up
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            start = options.now()
            for _ in range(options.repeats):
                state = run(state)
            seconds = options.now() - start
        total = _kernel_microseconds(trace_dir, instructions)
    step_count = steps * options.repeats
    kernels = [{"name": name, "microseconds_per_step": micros / step_count, "shape": instructions[name][0],
                "op": instructions[name][1]} for name, micros in total.most_common()]
    return {"steps": step_count, "batch_size": setup.config.batch_size,
            "wall_microseconds_per_step": seconds / step_count * 1e6, "kernels": kernels}


def report_lines(result: dict, options: BenchOptions) -> list[str]:
    del options
    if result.get("skipped"):
        return [f"Kernels of the step: skipped: {result['skipped']}", ""]
    kernels, wall = result["kernels"], result["wall_microseconds_per_step"]
    lines = [f"Kernels of the trainer's step (canonical VAE, batch {result['batch_size']}, {result['steps']} steps "
             f"traced): µs per step, by time; the step took {wall:,.0f} µs of wall time",
             f"  {'kernel':28s}{'µs/step':>9s}{'of step':>9s}  {'result':24s}op"]
    for kernel in kernels[:TOP]:
        micros = kernel["microseconds_per_step"]
        lines.append(f"  {kernel['name'][:27]:28s}{micros:9,.0f}{micros / wall:9.1%}  {kernel['shape'][:23]:24s}"
                     f"{kernel['op']}")
    rest = sum(k["microseconds_per_step"] for k in kernels[TOP:])
    summed = sum(k["microseconds_per_step"] for k in kernels)
    lines += [f"  the other {max(len(kernels) - TOP, 0)} kernels {rest:,.0f} µs; all kernels {summed:,.0f} µs "
              f"(a conditional's time includes its branch's; kernels on both cores at once add up past the wall time)",
              ""]
    return lines
