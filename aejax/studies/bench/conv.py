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
# The conv VAE's four conv layers (experiments/conv_vae.py, 28x28): (kernel side, in, out channels, stride);
# the stride-1 ones are the sub-pixel upsamplers (their outputs go through depth-to-space).
CONV_LAYERS = ((4, 1, 32, 2), (4, 32, 64, 2), (3, 64, 128, 1), (3, 32, 4, 1))


def _conv_lax(x, kernel, stride):
    from jax import lax
    return lax.conv_general_dilated(x, kernel, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _conv_patches(x, kernel, stride):
    """lax.conv_general_dilated_patches (features ordered channel-major), then one matmul."""
    from jax import lax
    kh, kw, cin, cout = kernel.shape
    patches = lax.conv_general_dilated_patches(x, (kh, kw), (stride, stride), "SAME",
                                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return patches @ kernel.transpose(2, 0, 1, 3).reshape(cin * kh * kw, cout)


def _conv_slices(x, kernel, stride):
    """im2col by kh·kw strided slices of the padded input (their gradients are pads), then one matmul."""
    import jax.numpy as jnp
    from jax import lax
    kh, kw, cin, cout = kernel.shape
    batch, height, width, _ = x.shape
    pads, outs = [], []
    for n, k in ((height, kh), (width, kw)):
        out = -(-n // stride)
        total = max((out - 1) * stride + k - n, 0)
        pads.append((total // 2, total - total // 2))
        outs.append(out)
    padded = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    columns = [lax.slice(padded, (0, i, j, 0), (batch, i + stride * (outs[0] - 1) + 1,
                                                j + stride * (outs[1] - 1) + 1, cin), (1, stride, stride, 1))
               for i in range(kh) for j in range(kw)]
    return jnp.concatenate(columns, axis=-1) @ kernel.reshape(kh * kw * cin, cout)


CONV_FORMULATIONS = {"lax.conv_general_dilated (the model's)": _conv_lax,
                     "conv_general_dilated_patches + matmul": _conv_patches,
                     "strided-slice patches + matmul": _conv_slices}


def conv_formulations(options: BenchOptions, batch_size: int = 128) -> dict:
    """The conv VAE's conv layers, forward and gradient, one jitted call a step, in each formulation:
    examples/s and the largest gradient difference from lax's (the formulations compute the same function)."""
    import jax
    import jax.numpy as jnp
    from aejax.models.conv import depth_to_space
    keys = jax.random.split(jax.random.PRNGKey(0), len(CONV_LAYERS) + 1)
    kernels = [0.1 * jax.random.normal(key, (k, k, cin, cout)) for key, (k, cin, cout, _) in zip(keys, CONV_LAYERS)]
    x = jax.random.uniform(keys[-1], (batch_size, 28, 28, 1))
    rows, reference = {}, None
    for name, conv in CONV_FORMULATIONS.items():
        def loss(kernels, conv=conv):
            h = x
            for i, (kernel, (_, _, _, stride)) in enumerate(zip(kernels, CONV_LAYERS)):
                h = conv(h, kernel, stride)
                h = h if stride == 2 else depth_to_space(h)
                h = jax.nn.relu(h) if i < len(CONV_LAYERS) - 1 else h
            return jnp.mean((h - x) ** 2)
        step = jax.jit(jax.grad(loss))
        grads = jax.block_until_ready(step(kernels))
        reference = grads if reference is None else reference
        seconds = median_seconds(lambda: jax.block_until_ready([step(kernels) for _ in range(5)]), options.repeats,
                                 options.now) / 5
        rows[name] = {"examples_per_sec": batch_size / seconds, "max_gradient_difference": max(
            float(jnp.max(jnp.abs(a - b))) for a, b in zip(grads, reference))}
    return rows


def scan_steps(options: BenchOptions) -> int:
    """Steps per timed call of the scanned chunk: a tenth of `steps` (its step is ~25x slower on CPU, and the
    rate of a scan does not depend on its length), so the section takes a minute, not six."""
    return max(2, options.steps // 10)


def section_conv(ctx, options: BenchOptions) -> dict:
    rows = {}
    for scan in (True, False):
        setup = make_setup(base_config(options, "conv_vae", scan_steps=scan), ctx["train"])
        steps = scan_steps(options) if scan else options.steps
        seconds = median_seconds(chunk_runner(setup, ctx["train_device"], steps), options.repeats, options.now)
        rows["scan" if scan else "per-step calls"] = steps * setup.config.batch_size / seconds
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
    return {**rows, "formulations": conv_formulations(options)}


def report_lines(result: dict, options: BenchOptions) -> list[str]:
    lines = [f"Conv VAE (experiments/conv_vae.py) through the trainer ({options.steps}-step chunks; the scan "
             f"{scan_steps(options)}-step chunks): examples/s"]
    torch_rate = result.get(TORCH_ROW)
    for name, rate in result.items():
        if name == "formulations":
            continue
        ratio = "" if torch_rate is None or name == TORCH_ROW else f"{rate / torch_rate:8.2f}× PyTorch"
        lines.append(f"  {name:30s}{rate:14,.0f}{ratio}")
    lines.append("Its four conv layers alone (forward and gradient, batch 128, a jitted call a step), each formulation: "
                 "examples/s, the ratio to lax's, the largest gradient difference from lax's")
    rows = result["formulations"]
    base = next(iter(rows.values()))["examples_per_sec"]
    for name, row in rows.items():
        lines.append(f"  {name:40s}{row['examples_per_sec']:10,.0f}{row['examples_per_sec'] / base:8.2f}×"
                     f"{row['max_gradient_difference']:12.1e}")
    return lines + [""]
