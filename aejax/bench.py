"""Speed of the trainer against PyTorch and against the machine's matmul throughput.

    python -m aejax.bench [--epochs=3] [--sections=vae,loop,torch,matmul,profile,models,batch]
                          [--models=ae,contractive,adversarial] [--batch_sizes=32,...,1024]
                          [--dtype=float32|bf16]

Everything runs in one process on the default JAX backend (the device is
printed), on Fashion-MNIST:

* vae: the canonical VAE (experiments/vae.py: 784-400-20 MLP, Bernoulli
  likelihood with dynamic binarisation, Adam 1e-3, batch 128) trained by the
  trainer's own compiled chunk (`train.make_train_chunk`, one epoch per
  call): examples/s (median over the epochs after the first), seconds from
  the start to the first finished step (compile included), test −ELBO;
* loop: the same step jitted alone and called once per batch from Python
  with host-side batches (the per-step loop the scan replaces);
* torch: the same model the usual way in PyTorch (`aejax.bench_torch`;
  skipped with a note when torch is not installed);
* matmul: only the matmuls of one step (forward, and backward: weight
  gradients of every layer, input gradients of all but the data layer) at
  the model's shapes under XLA: the matmul-bound limit of the step, and the
  fraction of it that the trainer reaches;
* profile: the step with parts removed (binarisation noise, the in-chunk
  permutations and gather, Adam → SGD) to show where the time above the
  matmuls goes;
* models: the step of other registered variants (`--models`; a name may
  carry config overrides, `contractive:jacobian=jvp`); unregistered names
  are skipped with a note;
* batch: the VAE at several batch sizes, with the matmul bound of each.

Timings on a shared machine are rough: the bench warms up, takes medians,
and prints its peak host memory (maxrss) at the end.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import resource
import statistics
import time
from typing import Any, Callable

from absl import app, flags

SECTIONS = ("vae", "loop", "torch", "matmul", "profile", "models", "batch")
_SECTIONS = flags.DEFINE_list("sections", list(SECTIONS), f"Which parts to run: {', '.join(SECTIONS)}.")
_EPOCHS = flags.DEFINE_integer("epochs", 3, "Training epochs of the vae, loop and torch sections.")
_MODELS = flags.DEFINE_list(
    "models", ["contractive:jacobian_method=jacfwd", "contractive:jacobian_method=jacrev",
               "contractive:jacobian_method=closed_form", "aae"],
    "Variants timed by the models section against the plain 'ae' step of the same shapes "
    "(name or name:key=value:..., config from experiments/<name>.py if it exists).")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["32", "64", "128", "256", "512", "1024"],
                                 "Batch sizes of the batch section.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bf16", "bfloat16"],
                           "Matmul dtype of the aejax models (config.dtype; params stay float32).")
_STEPS = flags.DEFINE_integer("steps", 100, "Steps per timed call in the profile and models sections.")
_EXAMPLES = flags.DEFINE_integer("examples", 12_800, "Examples per timed call in the batch section.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls (after one warm-up) per measurement.")
_TORCH_THREADS = flags.DEFINE_integer("torch_threads", 0, "torch.set_num_threads; 0 = the core count.")
_DATASET = flags.DEFINE_string("dataset", "fashion_mnist", "Dataset (its train and test splits).")
_CLOCK = flags.DEFINE_enum(
    "clock", "wall", ["wall", "process"],
    "What throughput is timed with: wall time, or this process's CPU time (steadier on a machine "
    "that other jobs share; compare like with like, e.g. `taskset -c 0 ... --torch_threads=1`).")


def clock() -> float:
    return time.process_time() if _CLOCK.value == "process" else time.perf_counter()


# ------------------------------------------------------------- helpers ----

@dataclasses.dataclass
class Setup:
    """A variant ready to step: config, model, optimiser, initial state, train step."""
    config: Any
    variant: Any
    model: Any
    optimizer: Any
    train_step: Callable
    init: Callable[[], Any]   # a fresh initial state (chunks donate theirs)


def make_setup(config, train_split, optimizer=None) -> Setup:
    import jax
    from aejax import registry, train
    config = train.prepare_config(config, train_split)
    variant = registry.get(config.model)
    model = variant.build_model(config, config.image_shape)
    optimizer = optimizer or train._make_optimizer(variant, config, config.num_train_steps)
    train_step = _train_step(train, variant, model, config, optimizer)
    init = lambda: train.create_train_state(config, variant, model, optimizer,  # noqa: E731
                                            jax.random.PRNGKey(config.seed))
    return Setup(config, variant, model, optimizer, train_step, init)


def _train_step(train, variant, model, config, optimizer):
    """The trainer's own step, with the variant's update hook (`train.make_update`)."""
    return train.make_train_step(
        train.make_update(variant, model, config, optimizer, config.num_train_steps))


def base_config(model: str = "vae", **overrides):
    """experiments/<model>.py if it exists (else experiments/base.py with `model`), plus overrides."""
    from experiments import base
    name = f"experiments.{model}"
    module = importlib.import_module(name) if importlib.util.find_spec(name) else None
    config = module.get_config() if module else base.get_config()
    config.model = model
    config.dataset = _DATASET.value
    config.dtype = {"bf16": "bfloat16"}.get(_DTYPE.value, _DTYPE.value)
    for key, value in overrides.items():
        if key not in config:
            raise KeyError(f"config has no key {key!r}")
        old = config[key]
        if isinstance(value, str) and isinstance(old, bool):
            value = value.lower() in ("1", "true", "yes")
        elif isinstance(value, str) and isinstance(old, (int, float)):
            value = type(old)(value)
        config[key] = value
    return config


def block(tree):
    import jax
    return jax.block_until_ready(tree)


def timed(fn: Callable[[], Any]) -> float:
    start = clock()
    block(fn())
    return clock() - start


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of `fn` over `repeats` calls, after one untimed warm-up call."""
    block(fn())
    return statistics.median(timed(fn) for _ in range(repeats))


def chunk_runner(setup: Setup, data, num_steps: int):
    """A callable running `num_steps` trainer steps per call (state carried across calls)."""
    from aejax import train
    chunk = train.make_train_chunk(setup.train_step, setup.config, data.num_examples)
    holder = {"state": setup.init()}

    def run():
        holder["state"], metrics = chunk(holder["state"], data.images, data.labels, num_steps)
        return metrics

    return run


def kernels_of(params) -> list[tuple[int, int]]:
    """(in, out) of every Dense kernel in a params tree."""
    import jax
    return [tuple(leaf.shape) for path, leaf in jax.tree_util.tree_leaves_with_path(params)
            if jax.tree_util.keystr(path).endswith("['kernel']") and leaf.ndim == 2]


def step_matmuls(kernels, batch_size: int, data_dim: int) -> list[tuple[int, int, int]]:
    """(m, k, n) of every matmul of one training step of an MLP with these kernels.

    Forward x[B, in] @ W[in, out]; backward the weight gradient x^T @ g for
    every layer and the input gradient g @ W^T for layers whose input is not
    the data (whose gradient nobody needs).
    """
    matmuls = []
    for fan_in, fan_out in kernels:
        matmuls += [(batch_size, fan_in, fan_out), (fan_in, batch_size, fan_out)]
        if fan_in != data_dim:
            matmuls.append((batch_size, fan_out, fan_in))
    return matmuls


def matmul_bound_seconds(matmuls, dtype, repeats: int, iterations: int = 50) -> float:
    """Seconds per step of only these matmuls under XLA (a loop of `iterations` steps).

    Each iteration perturbs one operand of each matmul by a scalar carried
    from the previous iteration's results, so XLA can neither hoist nor drop
    any matmul; the extra elementwise work is at most ~1/(2·min dim) of it.
    """
    import jax
    import jax.numpy as jnp
    keys = jax.random.split(jax.random.PRNGKey(0), 2 * len(matmuls))
    operands = [(jax.random.normal(keys[2 * i], (m, k), dtype), jax.random.normal(keys[2 * i + 1], (k, n), dtype))
                for i, (m, k, n) in enumerate(matmuls)]

    @jax.jit
    def loop(operands):
        def body(_, s):
            total = s
            for a, b in operands:
                if a.size <= b.size:
                    a = a + s.astype(a.dtype)
                else:
                    b = b + s.astype(b.dtype)
                total = total + jnp.sum(jnp.dot(a, b, preferred_element_type=jnp.float32)) * 1e-30
            return total
        return jax.lax.fori_loop(0, iterations, body, jnp.zeros((), jnp.float32))

    return median_seconds(lambda: loop(operands), repeats) / iterations


def flops(matmuls) -> int:
    return sum(2 * m * k * n for m, k, n in matmuls)


def canonical_matmuls(setup: Setup, batch_size: int):
    import numpy as np
    params = jax_eval_params(setup)
    return step_matmuls(kernels_of(params), batch_size, int(np.prod(setup.config.image_shape)))


def jax_eval_params(setup: Setup):
    import jax
    return jax.eval_shape(setup.init).params


def matmul_dtype():
    import jax.numpy as jnp
    return jnp.bfloat16 if _DTYPE.value in ("bf16", "bfloat16") else jnp.float32


# ------------------------------------------------------------ sections ----

def section_vae(ctx) -> dict:
    """The trainer's compiled chunk, one epoch per call."""
    from aejax import train
    start = time.perf_counter()
    setup = make_setup(base_config("vae"), ctx["train"])
    chunk = train.make_train_chunk(setup.train_step, setup.config, ctx["train"].num_examples)
    data = ctx["train_device"]
    state, _ = chunk(setup.init(), data.images, data.labels, 1)
    block(state)
    first_step = time.perf_counter() - start + ctx["data_seconds"]
    steps = ctx["steps_per_epoch"]
    state, rates = setup.init(), []
    for _ in range(_EPOCHS.value):
        epoch_start = clock()
        state, metrics = chunk(state, data.images, data.labels, steps)
        block(metrics)
        rates.append(steps * setup.config.batch_size / (clock() - epoch_start))
    evaluate = train.make_evaluate(setup.variant.make_loss(setup.model, setup.config), setup.config)
    elbo = float(evaluate(state.params, ctx["test_device"], state.rng, state.step)["elbo"])
    ctx["setup"] = setup
    return {"examples_per_sec": rates, "first_step_seconds": first_step, "test_negative_elbo": -elbo}


def section_loop(ctx) -> dict:
    """One jitted step per batch, batches indexed on the host (numpy) every step."""
    import jax
    import numpy as np
    from aejax import train
    setup = make_setup(base_config("vae"), ctx["train"])
    step = jax.jit(train.make_batch_step(setup.train_step, setup.config), donate_argnums=0)
    images, labels = ctx["train"].images, ctx["train"].labels
    batch_size, steps = setup.config.batch_size, ctx["steps_per_epoch"]
    rng = np.random.default_rng(0)
    state, rates = setup.init(), []
    for _ in range(_EPOCHS.value):
        order = rng.permutation(len(images))
        epoch_start = clock()
        for i in range(steps):
            batch = order[i * batch_size:(i + 1) * batch_size]
            state, metrics = step(state, images[batch], labels[batch])
        block(metrics)
        rates.append(steps * batch_size / (clock() - epoch_start))
    return {"examples_per_sec": rates}


def section_torch(ctx) -> dict:
    if importlib.util.find_spec("torch") is None:
        return {"skipped": "torch is not installed (pip install '.[bench]' or torch==2.13.0, CPU build)"}
    from aejax import bench_torch
    config = base_config("vae")
    result = bench_torch.run(
        ctx["train"].images, ctx["test"].images, epochs=_EPOCHS.value, batch_size=config.batch_size,
        learning_rate=config.learning_rate, hidden=config.hidden_dims[0], latent=config.latent_dim,
        threads=_TORCH_THREADS.value or os.cpu_count(), clock=clock)
    result["first_step_seconds"] += ctx["data_seconds"]
    return result


def section_matmul(ctx) -> dict:
    setup = ctx.get("setup") or make_setup(base_config("vae"), ctx["train"])
    matmuls = canonical_matmuls(setup, setup.config.batch_size)
    seconds = matmul_bound_seconds(matmuls, matmul_dtype(), _REPEATS.value)
    return {"seconds_per_step": seconds, "flops_per_step": flops(matmuls),
            "examples_per_sec": setup.config.batch_size / seconds, "num_matmuls": len(matmuls)}


def _profile_variants(ctx):
    """name → (setup, runner) of the step with one part removed at a time."""
    import optax
    from aejax import train
    from aejax.data import pipeline
    data, steps = ctx["train_device"], _STEPS.value
    full = make_setup(base_config("vae"), ctx["train"])
    variants = {"full trainer step": full,
                "no binarisation noise": make_setup(base_config("vae", binarize="none"), ctx["train"]),
                "Adam → SGD": make_setup(base_config("vae"), ctx["train"], optax.sgd(1e-3))}
    runners = {name: chunk_runner(setup, data, steps) for name, setup in variants.items()}
    # No gather: the same steps on batches gathered beforehand (the host placements' chunk).
    batches_chunk = train.make_batches_chunk(full.train_step, full.config)
    indices = pipeline.batch_indices(
        train.permutation_key(full.init().rng), 0, steps, data.num_examples, full.config.batch_size)
    images, labels = data.images[indices], data.labels[indices]
    holder = {"state": full.init()}

    def pre_gathered():
        holder["state"], metrics = batches_chunk(holder["state"], images, labels)
        return metrics

    runners["batches gathered beforehand (no permutation, no gather)"] = pre_gathered
    return runners


def section_profile(ctx) -> dict:
    steps, repeats = _STEPS.value, _REPEATS.value
    batch_size = base_config("vae").batch_size
    return {name: steps * batch_size / median_seconds(run, repeats)
            for name, run in _profile_variants(ctx).items()}


def _parse_model(spec: str) -> tuple[str, dict[str, str]]:
    name, *pairs = spec.split(":")
    return name, dict(pair.split("=", 1) for pair in pairs)


def section_models(ctx) -> dict:
    """Each variant's step, and the plain 'ae' step on the same config (same shapes) beside it."""
    from aejax import registry
    steps, repeats, rows = _STEPS.value, _REPEATS.value, {}
    registered = registry.names()

    def rate(config):
        setup = make_setup(config, ctx["train"])
        return steps * setup.config.batch_size / median_seconds(
            chunk_runner(setup, ctx["train_device"], steps), repeats)

    for spec in ["ae", *[m for m in _MODELS.value if m != "ae"]]:
        name, overrides = _parse_model(spec)
        if name not in registered:
            rows[spec] = {"skipped": f"not registered (registered: {', '.join(registered)})"}
            continue
        try:
            config = base_config(name, **overrides)
        except KeyError as error:
            rows[spec] = {"skipped": str(error)}
            continue
        plain = base_config(name, **overrides)
        plain.model = "ae"
        rows[spec] = {"examples_per_sec": rate(config), "plain_ae_examples_per_sec": rate(plain)}
    return rows


def section_batch(ctx) -> dict:
    rows = {}
    for batch_size in map(int, _BATCH_SIZES.value):
        setup = make_setup(base_config("vae", batch_size=batch_size), ctx["train"])
        steps = max(1, _EXAMPLES.value // batch_size)
        seconds = median_seconds(chunk_runner(setup, ctx["train_device"], steps), _REPEATS.value)
        bound = matmul_bound_seconds(canonical_matmuls(setup, batch_size), matmul_dtype(), _REPEATS.value)
        rate = steps * batch_size / seconds
        rows[batch_size] = {"examples_per_sec": rate, "fraction_of_matmul_bound": rate * bound / batch_size}
    return rows


SECTION_FNS = {"vae": section_vae, "loop": section_loop, "torch": section_torch,
               "matmul": section_matmul, "profile": section_profile, "models": section_models,
               "batch": section_batch}


# -------------------------------------------------------------- report ----

def _rate(result) -> float | None:
    rates = (result or {}).get("examples_per_sec")
    if rates is None:
        return None
    if isinstance(rates, list):
        return statistics.median(rates[1:] or rates)
    return rates


def _fmt(value, spec=",.0f") -> str:
    return "—" if value is None else format(value, spec)


def report(results: dict, header: str) -> str:
    lines = [header, ""]
    vae, loop, torch_, matmul = (results.get(k) for k in ("vae", "loop", "torch", "matmul"))
    if vae or loop or torch_ or matmul:
        epochs = _EPOCHS.value
        lines += [f"Canonical VAE (experiments/vae.py: MLP 400-20, Bernoulli, dynamic binarisation, Adam 1e-3, "
                  f"batch 128) on {_DATASET.value}, {epochs} epochs; examples/s = median over epochs 2..{epochs}",
                  f"  {'':34s}{'aejax scan':>14s}{'aejax loop':>14s}{'torch':>14s}"]
        torch_ok = torch_ and "skipped" not in torch_
        row = lambda name, a, b, c, spec=",.0f": lines.append(  # noqa: E731
            f"  {name:34s}{_fmt(a, spec):>14s}{_fmt(b, spec):>14s}{_fmt(c, spec):>14s}")
        row("examples/s", _rate(vae), _rate(loop), _rate(torch_) if torch_ok else None)
        row("start → first step (s)", (vae or {}).get("first_step_seconds"), None,
            torch_.get("first_step_seconds") if torch_ok else None, ".1f")
        row("test −ELBO (nats)", (vae or {}).get("test_negative_elbo"), None,
            torch_.get("test_negative_elbo") if torch_ok else None, ".2f")
        if torch_ and not torch_ok:
            lines.append(f"  torch: skipped: {torch_['skipped']}")
        elif torch_:
            lines.append(f"  torch {torch_['version']} on the CPU, {torch_['threads']} threads, eager, tensor "
                         "batching (randperm slices of one float tensor; no DataLoader)")
        if matmul:
            lines.append(f"  matmul-bound limit: {matmul['num_matmuls']} matmuls, "
                         f"{matmul['flops_per_step'] / 1e6:.0f} MFLOP/step, "
                         f"{matmul['seconds_per_step'] * 1e3:.2f} ms/step = "
                         f"{matmul['flops_per_step'] / matmul['seconds_per_step'] / 1e9:.1f} GFLOP/s → "
                         f"{matmul['examples_per_sec']:,.0f} examples/s")
        lines.append("  ratios:")
        if _rate(vae) and torch_ok:
            lines.append(f"    aejax / torch examples/s     {_rate(vae) / _rate(torch_):6.2f}×   (target ≥ 1.5×)")
        if _rate(vae) and matmul:
            lines.append(f"    fraction of matmul bound     {_rate(vae) / matmul['examples_per_sec']:6.1%}   "
                         "(target ≥ 80%)")
        if _rate(vae) and _rate(loop):
            lines.append(f"    scan / per-step loop         {_rate(vae) / _rate(loop):6.2f}×")
        if vae and torch_ok:
            lines.append(f"    test −ELBO aejax − torch     {vae['test_negative_elbo'] - torch_['test_negative_elbo']:+6.2f} "
                         "nats   (same within noise: a few nats after a few epochs)")
        lines.append("")
    if results.get("profile"):
        profile = results["profile"]
        full = profile["full trainer step"]
        lines.append(f"Where the step's time goes (VAE, batch 128, {_STEPS.value}-step chunks): "
                     "examples/s, ms/step, ms saved vs the full step")
        for name, rate in profile.items():
            ms = 128e3 / rate
            lines.append(f"  {name:56s}{rate:10,.0f}{ms:8.2f} ms{128e3 / full - ms:+8.2f} ms")
        if matmul:
            ms = matmul["seconds_per_step"] * 1e3
            lines.append(f"  {'matmuls only (the bound)':56s}{matmul['examples_per_sec']:10,.0f}{ms:8.2f} ms"
                         f"{128e3 / full - ms:+8.2f} ms")
        lines.append("")
    if results.get("models"):
        lines.append(f"Train step of each variant vs the plain 'ae' step on the same config "
                     f"({_STEPS.value}-step chunks): examples/s")
        for name, row_ in results["models"].items():
            if "skipped" in row_:
                lines.append(f"  {name:42s}skipped: {row_['skipped']}")
            else:
                ratio = row_["examples_per_sec"] / row_["plain_ae_examples_per_sec"]
                lines.append(f"  {name:42s}{row_['examples_per_sec']:10,.0f}   plain ae "
                             f"{row_['plain_ae_examples_per_sec']:10,.0f}   {ratio:6.2f}× ae")
        lines.append("")
    if results.get("batch"):
        lines.append(f"VAE by batch size ({_EXAMPLES.value:,} examples per timed call)")
        for batch_size, row_ in results["batch"].items():
            lines.append(f"  batch {batch_size:<28d}{row_['examples_per_sec']:12,.0f} examples/s"
                         f"{row_['fraction_of_matmul_bound']:8.1%} of matmul bound")
        lines.append("")
    return "\n".join(lines)


def peak_host_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    unknown = sorted(set(_SECTIONS.value) - set(SECTIONS))
    if unknown:
        raise app.UsageError(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    import jax
    from aejax.data import pipeline
    device = jax.devices()[0]
    header = (f"aejax bench: JAX {jax.__version__}, backend {jax.default_backend()}, device "
              f"{getattr(device, 'device_kind', device.platform)} ×{jax.device_count()}, "
              f"{os.cpu_count()} CPU cores ({len(os.sched_getaffinity(0))} usable), dtype {_DTYPE.value}, "
              f"{_CLOCK.value} clock. Rough figures: shared machines are noisy.")
    print(header, flush=True)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    config = base_config("vae")
    train_split, test_split = pipeline.load_split(config, "train"), pipeline.load_split(config, "test")
    ctx = {"train": train_split, "test": test_split,
           "train_device": pipeline.put_on_device(train_split),
           "test_device": pipeline.put_on_device(test_split),
           "steps_per_epoch": train_split.num_examples // config.batch_size}
    ctx["data_seconds"] = time.perf_counter() - start
    results = {}
    for name in SECTIONS:
        if name in _SECTIONS.value:
            section_start = time.perf_counter()
            results[name] = SECTION_FNS[name](ctx)
            print(f"  [{name}: {time.perf_counter() - section_start:.0f}s]", flush=True)
    print()
    print(report(results, header))
    print(f"peak host memory (maxrss): {peak_host_memory_mib():,.0f} MiB; total "
          f"{time.perf_counter() - start:.0f}s; load average {load_before:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end (above {os.cpu_count()}: other processes shared the cores)")


if __name__ == "__main__":
    app.run(main)
