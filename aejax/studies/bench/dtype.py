"""The bench's `dtype` section: bf16 matmuls against float32 on this machine's CPU (AVX512-BF16 or not).

* the canonical VAE for `--epochs` epochs in each dtype: examples/s and test −ELBO;
* the dSprites study's MLP (experiments/beta_vae_dsprites.py, 4096-1200-1200-10,
  batch 64) on dsprites_small: examples/s of the trainer's chunk in each dtype,
  as one scan and as per-step calls.
"""
from __future__ import annotations

import dataclasses

from aejax.studies.bench.harness import BenchOptions, chunk_runner, make_setup, median_rate, median_seconds

DTYPES = ("float32", "bfloat16")


def section_dtype(ctx, options: BenchOptions, section_vae) -> dict:
    """`section_vae`: the vae section, run once per dtype."""
    from aejax.data import placement, splits
    from experiments import beta_vae_dsprites
    vae = {dtype: section_vae(dict(ctx), dataclasses.replace(options, dtype=dtype)) for dtype in DTYPES}
    config = beta_vae_dsprites.get_config()
    config.dataset = "dsprites_small"
    train = splits.load(config, "train")
    data = placement.put_on_device(train)
    dsprites = {}
    for dtype in DTYPES:
        for scan in (True, False):
            run_config = config.copy_and_resolve_references()
            run_config.dtype, run_config.scan_steps = dtype, scan
            setup = make_setup(run_config, train)
            seconds = median_seconds(chunk_runner(setup, data, options.steps), options.repeats, options.now)
            dsprites[f"{dtype}, {'scan' if scan else 'per-step calls'}"] = options.steps * config.batch_size / seconds
    return {"vae": vae, "dsprites_mlp": dsprites}


def report_lines(result: dict, options: BenchOptions) -> list[str]:
    vae = result["vae"]
    lines = [f"bf16 matmuls against float32 (params stay float32): canonical VAE, {options.epochs} epochs",
             f"  {'':30s}{'examples/s':>14s}{'test −ELBO':>14s}"]
    for dtype, row in vae.items():
        lines.append(f"  {dtype:30s}{median_rate(row):14,.0f}{row['test_negative_elbo']:14.2f}")
    lines.append(f"  bf16 / float32: {median_rate(vae['bfloat16']) / median_rate(vae['float32']):.2f}× examples/s, "
                 f"{vae['bfloat16']['test_negative_elbo'] - vae['float32']['test_negative_elbo']:+.2f} nats")
    lines.append("dSprites MLP (4096-1200-1200-10, batch 64) on dsprites_small: examples/s")
    for name, rate in result["dsprites_mlp"].items():
        lines.append(f"  {name:30s}{rate:14,.0f}")
    return lines + [""]
