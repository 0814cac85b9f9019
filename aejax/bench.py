"""Speed of the trainer against PyTorch and against the machine's matmul throughput.

    python -m aejax.bench [--epochs=3] [--sections=vae,loop,torch,matmul,profile,models,batch,startup]
                          [--models=ae,contractive,adversarial] [--batch_sizes=32,...,1024]
                          [--dtype=float32|bf16] [--clock=wall|process]

Thin: flags in, `aejax.studies.bench` runs the sections (what each measures is in
its docstring) and prints the figures side by side with their ratios.
"""
import os
import time

from absl import app, flags

from aejax.studies.bench.harness import DEFAULT_SECTIONS, SECTIONS, BenchOptions

_SECTIONS = flags.DEFINE_list("sections", list(DEFAULT_SECTIONS), f"Which parts to run: {', '.join(SECTIONS)} "
                              "(all but conv, dtype, population, likelihood, kernels and process by default).")
_EPOCHS = flags.DEFINE_integer("epochs", 3, "Training epochs of the vae, loop, torch and process (use 5) sections.")
_MODELS = flags.DEFINE_list(
    "models", list(BenchOptions.models),
    "Variants timed by the models section against the plain 'ae' step of the same shapes "
    "(name or name:key=value:..., config from experiments/<name>.py if it exists).")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", [str(b) for b in BenchOptions.batch_sizes], "Batch section sizes.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bf16", "bfloat16"],
                           "Matmul dtype of the aejax models (config.dtype; params stay float32).")
_STEPS = flags.DEFINE_integer("steps", 100, "Steps per timed call in the profile and models sections.")
_EXAMPLES = flags.DEFINE_integer("examples", 12_800, "Examples per timed call in the batch section.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls (after one warm-up) per measurement.")
_TORCH_THREADS = flags.DEFINE_integer("torch_threads", 0, "torch.set_num_threads; 0 = the core count.")
_DATASET = flags.DEFINE_string("dataset", "fashion_mnist", "Dataset (its train and test splits).")
_MEMBERS = flags.DEFINE_list("members", [str(m) for m in BenchOptions.members],
                             "Population sizes of the population section's throughput.")
_SWEEP_EPOCHS = flags.DEFINE_integer("sweep_epochs", BenchOptions.sweep_epochs,
                                     "Epochs of the population section's whole β sweep (0: skip it).")
_STARTUP = flags.DEFINE_string("startup_config", BenchOptions.startup_config,
                               "Config of the startup section's smoke runs (its rounds: --repeats).")
_LIKELIHOOD_SAMPLES = flags.DEFINE_integer(
    "likelihood_samples", BenchOptions.likelihood_samples,
    "K of the likelihood section (importance samples per test image; Burda et al.'s protocol: 5000).", lower_bound=1)
_CLOCK = flags.DEFINE_enum(
    "clock", "wall", ["wall", "process"],
    "What throughput is timed with: wall time, or this process's CPU time (steadier on a machine "
    "that other jobs share; compare like with like, e.g. `taskset -c 0 ... --torch_threads=1`).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    unknown = sorted(set(_SECTIONS.value) - set(SECTIONS))
    if unknown:
        raise app.UsageError(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    import jax
    from aejax.studies.bench import report, sections
    options = BenchOptions(
        sections=tuple(_SECTIONS.value), epochs=_EPOCHS.value, models=tuple(_MODELS.value),
        batch_sizes=tuple(int(b) for b in _BATCH_SIZES.value), dtype=_DTYPE.value, steps=_STEPS.value,
        examples=_EXAMPLES.value, repeats=_REPEATS.value, torch_threads=_TORCH_THREADS.value,
        dataset=_DATASET.value, clock=_CLOCK.value, startup_config=_STARTUP.value,
        members=tuple(int(m) for m in _MEMBERS.value), sweep_epochs=_SWEEP_EPOCHS.value,
        likelihood_samples=_LIKELIHOOD_SAMPLES.value)
    device = jax.devices()[0]
    header = (f"aejax bench: JAX {jax.__version__}, backend {jax.default_backend()}, device "
              f"{getattr(device, 'device_kind', device.platform)} ×{jax.device_count()}, "
              f"{os.cpu_count()} CPU cores ({len(os.sched_getaffinity(0))} usable), dtype {options.dtype}, "
              f"{options.clock} clock. Rough figures: shared machines are noisy.")
    print(header, flush=True)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    results = sections.run(options, say=lambda line: print(line, flush=True))
    print()
    print(report.report(results, header, options))
    print(f"peak host memory (maxrss): {report.peak_host_memory_mib():,.0f} MiB; total "
          f"{time.perf_counter() - start:.0f}s; load average {load_before:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end (above {os.cpu_count()}: other processes shared the cores)")


if __name__ == "__main__":
    app.run(main)
