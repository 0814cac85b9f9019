"""The bench's sections: each times one thing and returns its figures (see aejax/studies/bench/__init__.py)."""
from __future__ import annotations

import importlib.util
import os
import time

from aejax.studies.bench import startup
from aejax.studies.bench.harness import (BenchOptions, base_config, block, canonical_matmuls, chunk_runner, flops,
                                         interleaved_median_seconds, make_setup, matmul_bound_seconds, median_seconds,
                                         trainer_and_bound_seconds, trainer_chunk)


def section_vae(ctx, options: BenchOptions) -> dict:
    """The trainer's compiled chunk, one epoch per call."""
    from aejax.training.step import make_evaluate
    start = time.perf_counter()
    setup = make_setup(base_config(options, "vae"), ctx["train"])
    data = ctx["train_device"]
    chunk = trainer_chunk(setup, data)
    state, _ = chunk(setup.init(), 0, 1)
    block(state)
    first_step = time.perf_counter() - start + ctx["data_seconds"]
    steps = ctx["steps_per_epoch"]
    state, rates = setup.init(), []
    for epoch in range(options.epochs):
        epoch_start = options.now()
        state, metrics = chunk(state, epoch * steps, steps)
        block(metrics)
        rates.append(steps * setup.config.batch_size / (options.now() - epoch_start))
    evaluate = make_evaluate(setup.variant.make_loss(setup.model, setup.config), setup.config)
    elbo = float(evaluate(state.params, ctx["test_device"], state.rng, state.step)["elbo"])
    ctx["setup"] = setup
    return {"examples_per_sec": rates, "first_step_seconds": first_step, "test_negative_elbo": -elbo}


def section_loop(ctx, options: BenchOptions) -> dict:
    """One jitted step per batch, batches indexed on the host (numpy) every step."""
    import jax
    import numpy as np
    from aejax.training.step import make_batch_step
    setup = make_setup(base_config(options, "vae"), ctx["train"])
    step = jax.jit(make_batch_step(setup.train_step, setup.config), donate_argnums=0)
    images, labels = ctx["train"].images, ctx["train"].labels
    batch_size, steps = setup.config.batch_size, ctx["steps_per_epoch"]
    rng = np.random.default_rng(0)
    state, rates = setup.init(), []
    for _ in range(options.epochs):
        order = rng.permutation(len(images))
        epoch_start = options.now()
        for i in range(steps):
            batch = order[i * batch_size:(i + 1) * batch_size]
            state, metrics = step(state, images[batch], labels[batch])
        block(metrics)
        rates.append(steps * batch_size / (options.now() - epoch_start))
    return {"examples_per_sec": rates}


def section_torch(ctx, options: BenchOptions) -> dict:
    if importlib.util.find_spec("torch") is None:
        return {"skipped": "torch is not installed (pip install '.[bench]' or torch==2.13.0, CPU build)"}
    from aejax.studies.bench import torch_vae
    config = base_config(options, "vae")
    result = torch_vae.run(
        ctx["train"].images, ctx["test"].images, epochs=options.epochs, batch_size=config.batch_size,
        learning_rate=config.learning_rate, hidden=config.hidden_dims[0], latent=config.latent_dim,
        threads=options.torch_threads or os.cpu_count(), clock=options.now)
    result["first_step_seconds"] += ctx["data_seconds"]
    return result


def section_matmul(ctx, options: BenchOptions) -> dict:
    """The matmul bound, timed in turn with the trainer's chunk (`--steps` steps a call): the fraction of the
    bound the trainer reaches, from one window of a machine whose speed drifts by tens of percent."""
    setup = ctx.get("setup") or make_setup(base_config(options, "vae"), ctx["train"])
    matmuls = canonical_matmuls(setup, setup.config.batch_size)
    trainer, bound = trainer_and_bound_seconds(setup, ctx["train_device"], options.steps, matmuls,
                                               options.matmul_dtype, options.repeats, options.now)
    result = {"seconds_per_step": bound, "flops_per_step": flops(matmuls),
              "examples_per_sec": setup.config.batch_size / bound, "num_matmuls": len(matmuls),
              "trainer_seconds_per_step": trainer, "trainer_fraction_of_bound": bound / trainer}
    if importlib.util.find_spec("torch") is not None:  # the same matmuls through each framework's kernels
        import jax.numpy as jnp
        from aejax.studies.bench import torch_vae
        threads = options.torch_threads or os.cpu_count()
        xla = {dtype: bound if dtype == options.matmul_dtype else  # the bound above is one of them
               matmul_bound_seconds(matmuls, dtype, options.repeats, options.now) for dtype in (jnp.float32, jnp.bfloat16)}
        result["frameworks"] = {
            "XLA float32": xla[jnp.float32], "XLA bfloat16": xla[jnp.bfloat16],
            **{f"torch {dtype}": torch_vae.matmul_seconds(matmuls, threads, dtype, repeats=options.repeats,
                                                          clock=options.now) for dtype in ("float32", "bfloat16")}}
    return result


def _profile_variants(ctx, options: BenchOptions):
    """name → (setup, runner) of the step with one part removed at a time."""
    import optax
    from aejax.data import batches
    from aejax.training.chunks import make_batches_chunk
    from aejax.training.step import permutation_key
    data, steps = ctx["train_device"], options.steps
    full = make_setup(base_config(options, "vae"), ctx["train"])
    variants = {"full trainer step": full,
                "no binarisation noise": make_setup(base_config(options, "vae", binarize="none"), ctx["train"]),
                "Adam → SGD": make_setup(base_config(options, "vae"), ctx["train"], optax.sgd(1e-3))}
    runners = {name: chunk_runner(setup, data, steps) for name, setup in variants.items()}
    # No gather: the same steps on batches gathered beforehand (the host placements' chunk).
    batches_chunk = make_batches_chunk(full.train_step, full.config)
    indices = batches.batch_indices(
        permutation_key(full.init().rng), 0, steps, data.num_examples, full.config.batch_size)
    images, labels = data.images[indices], data.labels[indices]
    holder = {"state": full.init()}

    def pre_gathered():
        holder["state"], metrics = batches_chunk(holder["state"], images, labels)
        return metrics

    runners["batches gathered beforehand (no gather)"] = pre_gathered
    runners["epoch permutations drawn in each chunk (before)"] = _in_chunk_orders(
        full, data, steps)
    return runners


def _in_chunk_orders(setup, data, steps: int):
    """The trainer's chunk as it was: the permutations of the epochs each chunk spans drawn in the program."""
    import jax
    from aejax.data import batches
    from aejax.training.chunks import make_one_step
    from aejax.training.step import permutation_key
    one_step = make_one_step(setup.train_step, setup.config)
    n, batch_size = data.num_examples, setup.config.batch_size

    @jax.jit
    def chunk(state, images, labels):
        indices = batches.batch_indices(permutation_key(state.rng), state.step, steps, n, batch_size)
        return jax.lax.scan(lambda s, idx: one_step(s, images, labels, idx), state, indices)

    holder = {"state": setup.init()}

    def run():
        holder["state"], metrics = chunk(holder["state"], data.images, data.labels)
        return metrics

    return run


def section_profile(ctx, options: BenchOptions) -> dict:
    """The variants' timed calls in turn (`interleaved_median_seconds`), so each ratio is of one window."""
    batch_size = base_config(options, "vae").batch_size
    seconds = interleaved_median_seconds(_profile_variants(ctx, options), options.repeats, options.now)
    return {name: options.steps * batch_size / value for name, value in seconds.items()}


def _parse_model(spec: str) -> tuple[str, dict[str, str]]:
    name, *pairs = spec.split(":")
    return name, dict(pair.split("=", 1) for pair in pairs)


def section_models(ctx, options: BenchOptions) -> dict:
    """Each variant's step, and the plain 'ae' step on the same config (same shapes) beside it."""
    from aejax import objectives
    steps, repeats, rows = options.steps, options.repeats, {}
    registered = objectives.names()

    def rate(config):
        setup = make_setup(config, ctx["train"])
        return steps * setup.config.batch_size / median_seconds(
            chunk_runner(setup, ctx["train_device"], steps), repeats, options.now)

    for spec in ["ae", *[m for m in options.models if m != "ae"]]:
        name, overrides = _parse_model(spec)
        if name not in registered:
            rows[spec] = {"skipped": f"not registered (registered: {', '.join(registered)})"}
            continue
        try:
            config = base_config(options, name, **overrides)
        except KeyError as error:
            rows[spec] = {"skipped": str(error)}
            continue
        plain = base_config(options, name, **overrides)
        plain.model = "ae"
        rows[spec] = {"examples_per_sec": rate(config), "plain_ae_examples_per_sec": rate(plain)}
    return rows


def section_batch(ctx, options: BenchOptions) -> dict:
    rows = {}
    for batch_size in options.batch_sizes:
        setup = make_setup(base_config(options, "vae", batch_size=batch_size), ctx["train"])
        steps = max(1, options.examples // batch_size)
        trainer, bound = trainer_and_bound_seconds(setup, ctx["train_device"], steps,
                                                   canonical_matmuls(setup, batch_size), options.matmul_dtype,
                                                   options.repeats, options.now)
        rows[batch_size] = {"examples_per_sec": batch_size / trainer, "fraction_of_matmul_bound": bound / trainer}
    return rows


def section_startup(ctx, options: BenchOptions) -> dict:
    """Whole processes: JAX's own start against a warm and a cold smoke run (see `startup`)."""
    del ctx
    return startup.run(options.startup_config, options.repeats, _repo())


def _repo() -> str:
    """The repository's root: where whole-process sections run `python -m aejax.main` (its experiments/)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def section_process(ctx, options: BenchOptions) -> dict:
    """Whole processes: aejax's canonical VAE run against the PyTorch script's (see `process`)."""
    del ctx
    from aejax.studies.bench import process
    if importlib.util.find_spec("torch") is None:
        return {"skipped": "torch is not installed (pip install '.[bench]' or torch==2.13.0, CPU build)"}
    return process.run(options.epochs, options.repeats, _repo(), options.dataset)


def section_population(ctx, options: BenchOptions) -> dict:
    from aejax.studies.bench import population
    return population.section_population(ctx, options)


def section_likelihood(ctx, options: BenchOptions) -> dict:
    from aejax.studies.bench import likelihood
    return likelihood.section_likelihood(ctx, options)


def section_conv(ctx, options: BenchOptions) -> dict:
    from aejax.studies.bench import conv
    return conv.section_conv(ctx, options)


def section_kernels(ctx, options: BenchOptions) -> dict:
    from aejax.studies.bench import kernels
    return kernels.section_kernels(ctx, options)


def section_dtype(ctx, options: BenchOptions) -> dict:
    from aejax.studies.bench import dtype
    return dtype.section_dtype(ctx, options, section_vae)


SECTION_FNS = {"vae": section_vae, "loop": section_loop, "torch": section_torch,
               "matmul": section_matmul, "profile": section_profile, "models": section_models,
               "batch": section_batch, "startup": section_startup, "conv": section_conv, "dtype": section_dtype,
               "population": section_population, "likelihood": section_likelihood, "kernels": section_kernels,
               "process": section_process}
IN_PROCESS = set(SECTION_FNS) - {"startup", "process"}  # the sections that need the dataset loaded here


def load_data(options: BenchOptions) -> dict:
    """The shared context of the sections: the dataset's splits on the host and on the device."""
    from aejax.data import placement, splits
    start = time.perf_counter()
    config = base_config(options, "vae")
    train_split, test_split = splits.load(config, "train"), splits.load(config, "test")
    return {"train": train_split, "test": test_split,
            "train_device": placement.put_on_device(train_split),
            "test_device": placement.put_on_device(test_split),
            "steps_per_epoch": train_split.num_examples // config.batch_size,
            "data_seconds": time.perf_counter() - start}


def run(options: BenchOptions, say=print) -> dict:
    """Every chosen section in SECTIONS order; `say` hears each section's time."""
    ctx = load_data(options) if IN_PROCESS & set(options.sections) else {}
    results = {}
    for name, section in SECTION_FNS.items():
        if name in options.sections:
            start = time.perf_counter()
            results[name] = section(ctx, options)
            say(f"  [{name}: {time.perf_counter() - start:.0f}s]")
    return results
