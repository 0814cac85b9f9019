"""The bench's `conv` section: the conv VAE (experiments/conv_vae.py) through the trainer's chunk, and in PyTorch.

Examples/s as one scan and as per-step jitted calls (XLA:CPU runs convolutions
inside a loop ~10x slower, jax-ml/jax#12868, so conv configs set scan_steps=False
on CPU; on an accelerator the scan should win), beside the same model in eager
PyTorch (`torch_vae.ConvVAE`: the same layers and parameter count, NCHW) when
torch is installed: 2 epochs of the first `steps` batches, the second one timed.
"""
from __future__ import annotations

import importlib.util
import os

from aejax.studies.bench.harness import BenchOptions, base_config, chunk_runner, make_setup, median_seconds

TORCH_ROW = "PyTorch, eager"


def section_conv(ctx, options: BenchOptions) -> dict:
    rows = {}
    for scan in (True, False):
        setup = make_setup(base_config(options, "conv_vae", scan_steps=scan), ctx["train"])
        seconds = median_seconds(chunk_runner(setup, ctx["train_device"], options.steps), options.repeats,
                                 options.now)
        rows["scan" if scan else "per-step calls"] = options.steps * setup.config.batch_size / seconds
    if importlib.util.find_spec("torch") is not None:
        from aejax.studies.bench import torch_vae
        config = setup.config
        examples = options.steps * config.batch_size
        result = torch_vae.run(ctx["train"].images[:examples], ctx["test"].images[:config.batch_size], epochs=2,
                               batch_size=config.batch_size, learning_rate=config.learning_rate,
                               hidden=config.hidden_dims[0], latent=config.latent_dim,
                               threads=options.torch_threads or os.cpu_count(), clock=options.now,
                               architecture="conv")
        rows[TORCH_ROW] = result["examples_per_sec"][-1]
    return rows


def report_lines(result: dict, options: BenchOptions) -> list[str]:
    lines = [f"Conv VAE (experiments/conv_vae.py) through the trainer ({options.steps}-step chunks): examples/s"]
    torch_rate = result.get(TORCH_ROW)
    for name, rate in result.items():
        ratio = "" if torch_rate is None or name == TORCH_ROW else f"{rate / torch_rate:8.2f}× PyTorch"
        lines.append(f"  {name:30s}{rate:14,.0f}{ratio}")
    return lines + [""]
