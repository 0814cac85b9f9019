"""What the bench sections share: their options, a variant ready to step, timing, the matmul bound."""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import statistics
import time
from typing import Any, Callable

SECTIONS = ("vae", "loop", "torch", "matmul", "profile", "models", "batch", "startup", "conv", "dtype", "population",
            "likelihood", "kernels", "process")
DEFAULT_SECTIONS = SECTIONS[:8]  # the others take minutes or answer a narrower question: ask by name


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    """What to run and how much of it (the flags of `python -m aejax.bench`)."""
    sections: tuple[str, ...] = DEFAULT_SECTIONS
    epochs: int = 3
    models: tuple[str, ...] = ("contractive:jacobian_method=jacfwd", "contractive:jacobian_method=jacrev",
                               "contractive:jacobian_method=closed_form", "aae")
    batch_sizes: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)
    dtype: str = "float32"
    steps: int = 100
    examples: int = 12_800
    repeats: int = 3
    torch_threads: int = 0
    dataset: str = "fashion_mnist"
    clock: str = "wall"
    members: tuple[int, ...] = (1, 4, 16)
    sweep_epochs: int = 5
    startup_config: str = "experiments/beta_vae.py:smoke"
    likelihood_samples: int = 1_000

    def now(self) -> float:
        """The clock throughput is timed with: wall time, or this process's CPU time."""
        return time.process_time() if self.clock == "process" else time.perf_counter()

    @property
    def matmul_dtype(self):
        import jax.numpy as jnp
        return jnp.bfloat16 if self.dtype in ("bf16", "bfloat16") else jnp.float32


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
    from aejax import objectives
    from aejax.training.config import prepare_config, validate
    from aejax.training.state import create_train_state, variant_optimizer
    from aejax.training.step import make_train_step, make_update
    config = prepare_config(validate(config), train_split)
    variant = objectives.get(config.model)
    model = variant.build_model(config, config.image_shape)
    optimizer = optimizer or variant_optimizer(variant, config, config.num_train_steps)
    train_step = make_train_step(make_update(variant, model, config, optimizer, config.num_train_steps))
    init = lambda: create_train_state(config, variant, model, optimizer,  # noqa: E731
                                      jax.random.PRNGKey(config.seed))
    return Setup(config, variant, model, optimizer, train_step, init)


def base_config(options: BenchOptions, name: str = "vae", **overrides):
    """experiments/<name>.py if it exists, else experiments/base.py with model `name`; plus overrides."""
    from experiments import base
    module_name = f"experiments.{name}"
    module = importlib.import_module(module_name) if importlib.util.find_spec(module_name) else None
    config = module.get_config() if module else base.get_config(model=name)
    config.dataset = options.dataset
    config.dtype = {"bf16": "bfloat16"}.get(options.dtype, options.dtype)
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


def median_rate(result) -> float | None:
    """A section's examples/s: the median over epochs after the first (compile), or its one figure."""
    rates = (result or {}).get("examples_per_sec")
    if rates is None:
        return None
    if isinstance(rates, list):
        return statistics.median(rates[1:] or rates)
    return rates


def block(tree):
    import jax
    return jax.block_until_ready(tree)


def timed(fn: Callable[[], Any], clock: Callable[[], float]) -> float:
    start = clock()
    block(fn())
    return clock() - start


def median_seconds(fn: Callable[[], Any], repeats: int, clock: Callable[[], float]) -> float:
    """Median time of `fn` by `clock` over `repeats` calls, after one untimed warm-up call."""
    return interleaved_median_seconds({"fn": fn}, repeats, clock)["fn"]


def interleaved_median_seconds(fns: dict[str, Callable[[], Any]], repeats: int,
                               clock: Callable[[], float]) -> dict[str, float]:
    """The median time of each of `fns` over `repeats` calls after one untimed warm-up call each, their
    timed calls taken in turn (one of each per round).

    On a shared machine the speed drifts by tens of percent within a minute; timed
    one after another, variants would compare windows rather than code.
    """
    for fn in fns.values():
        block(fn())
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn, clock))
    return {name: statistics.median(values) for name, values in times.items()}


def epoch_orders(setup: Setup, data, state):
    """The batches' indices as the trainer draws them for a run that starts from `state` (`EpochOrders`)."""
    from aejax.data.batches import EpochOrders
    from aejax.training.step import permutation_key
    return EpochOrders(permutation_key(state.rng), data.num_examples, setup.config.batch_size)


def trainer_chunk(setup: Setup, data):
    """(state, first_step, num_steps) → (state, metrics): the trainer's compiled chunk fed as the trainer feeds it
    (`EpochOrders`, each epoch's permutation drawn once)."""
    from aejax.training.chunks import make_train_chunk
    chunk = make_train_chunk(setup.train_step, setup.config)
    orders = epoch_orders(setup, data, setup.init())

    def run(state, first_step: int, num_steps: int):
        return chunk(state, data.images, data.labels, orders.indices(first_step, num_steps))

    return run


def chunk_runner(setup: Setup, data, num_steps: int):
    """A callable running `num_steps` trainer steps per call (state carried across calls)."""
    chunk = trainer_chunk(setup, data)
    holder = {"state": setup.init(), "step": 0}

    def run():
        holder["state"], metrics = chunk(holder["state"], holder["step"], num_steps)
        holder["step"] += num_steps
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


def matmul_bound_loop(matmuls, dtype, iterations: int = 50) -> Callable[[], Any]:
    """A callable running only these matmuls under XLA, `iterations` steps' worth (one compiled loop).

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

    return lambda: loop(operands)


def matmul_bound_seconds(matmuls, dtype, repeats: int, clock: Callable[[], float], iterations: int = 50) -> float:
    """Seconds per step of only these matmuls under XLA (`matmul_bound_loop`)."""
    return median_seconds(matmul_bound_loop(matmuls, dtype, iterations), repeats, clock) / iterations


def trainer_and_bound_seconds(setup: Setup, data, num_steps: int, matmuls, dtype, repeats: int,
                              clock: Callable[[], float], iterations: int = 50) -> tuple[float, float]:
    """Seconds per step of the trainer's chunk (`num_steps` steps a call) and of only its `matmuls`
    (`matmul_bound_loop`), their calls timed in turn: a ratio of the two comes from one window of the machine."""
    seconds = interleaved_median_seconds(
        {"trainer": chunk_runner(setup, data, num_steps), "bound": matmul_bound_loop(matmuls, dtype, iterations)},
        repeats, clock)
    return seconds["trainer"] / num_steps, seconds["bound"] / iterations


def flops(matmuls) -> int:
    return sum(2 * m * k * n for m, k, n in matmuls)


def canonical_matmuls(setup: Setup, batch_size: int):
    import numpy as np
    params = jax_eval_params(setup)
    return step_matmuls(kernels_of(params), batch_size, int(np.prod(setup.config.image_shape)))


def jax_eval_params(setup: Setup):
    import jax
    return jax.eval_shape(setup.init).params
