"""The bench's `conv` section: the conv VAE (experiments/conv_vae.py) through the trainer's chunk.

Examples/s as one scan and as per-step jitted calls (XLA:CPU runs convolutions
inside a loop ~10x slower, jax-ml/jax#12868, so conv configs set scan_steps=False
on CPU; on an accelerator the scan should win).
"""
from __future__ import annotations

from aejax.studies.bench.harness import BenchOptions, base_config, chunk_runner, make_setup, median_seconds


def section_conv(ctx, options: BenchOptions) -> dict:
    rows = {}
    for scan in (True, False):
        setup = make_setup(base_config(options, "conv_vae", scan_steps=scan), ctx["train"])
        seconds = median_seconds(chunk_runner(setup, ctx["train_device"], options.steps), options.repeats,
                                 options.now)
        rows["scan" if scan else "per-step calls"] = options.steps * setup.config.batch_size / seconds
    return rows


def report_lines(result: dict, options: BenchOptions) -> list[str]:
    lines = [f"Conv VAE (experiments/conv_vae.py) through the trainer ({options.steps}-step chunks): examples/s"]
    lines += [f"  {name:30s}{rate:14,.0f}" for name, rate in result.items()]
    return lines + [""]
