"""The bench's `population` section: a sweep as one vmapped program against its runs one by one.

Two measurements, side by side in one process:

* throughput: the canonical VAE's train chunk as a population of N members
  (β and seed differ), side by side and vmapped, against the trainer's
  single-run chunk: members × examples/s, the speed-up over one run, and the
  fraction of the matmul bound (N members do N times the matmuls of one run);
* the README's Fashion-MNIST β sweep (β ∈ {0.25, 1, 4, 16, 64} × seeds {0, 1},
  `--sweep_epochs` epochs, evaluated with K = 100, no baselines, no N2D) run as
  whole `python -m aejax.sweep run` processes, separately (two points at a time,
  each pinned to a core) and as `--population` (one process): wall time of each
  including evaluation, their ratio, and the two tables of results.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import jax

from aejax.studies.bench.harness import (BenchOptions, base_config, block, canonical_matmuls, make_setup,
                                         median_seconds, trainer_and_bound_seconds)

SWEEP_BETAS = ("0.25", "1", "4", "16", "64")
SWEEP_SEEDS = ("0", "1")
SWEEP_EVAL_FLAGS = ("--num_importance_samples=100", "--nobaselines", "--non2d")


def population_rates(ctx, options: BenchOptions) -> dict:
    """Members × examples/s of populations of options.members sizes, beside one run and the matmul bound."""
    from aejax.training.config import prepare_config, validate
    from aejax.training.population import MemberOrders, build_program
    data, steps = ctx["train_device"], options.steps
    single = make_setup(base_config(options, "vae"), ctx["train"])
    batch = single.config.batch_size
    trainer, bound = trainer_and_bound_seconds(single, data, steps, canonical_matmuls(single, batch),
                                               options.matmul_dtype, options.repeats, options.now)
    single_rate, bound = batch / trainer, batch / bound
    rows = {}
    for size in options.members:
        configs = []
        for i in range(size):
            config = base_config(options, "vae", beta=float(SWEEP_BETAS[i % len(SWEEP_BETAS)]), seed=i)
            configs.append(prepare_config(validate(config), ctx["train"]))
        keys = jax.numpy.stack([jax.random.PRNGKey(c.seed) for c in configs])
        for mode, vectorize in (("side by side", False), ("vmapped", True)):
            program = build_program(configs, vectorize=vectorize)
            holder = {"states": program.init(program.values, keys), "step": 0}
            orders = MemberOrders(holder["states"].rng, data.num_examples, batch)

            def run():
                holder["states"], metrics = program.chunk(holder["states"], data.images, data.labels,
                                                          orders.indices(holder["step"], steps), [True] * size)
                holder["step"] += steps
                return metrics

            seconds = median_seconds(run, options.repeats, options.now)
            rate = size * steps * batch / seconds
            rows[f"{size} {mode}"] = {"member_examples_per_sec": rate, "speedup_over_one_run": rate / single_rate,
                                      "fraction_of_matmul_bound": rate / bound}
    block(holder["states"])
    return {"single_examples_per_sec": single_rate, "matmul_bound_examples_per_sec": bound, "populations": rows}


def _sweep_command(runs_dir: str, epochs: int, population: bool) -> list[str]:
    return [sys.executable, "-m", "aejax.sweep", "run", "experiments/beta_vae.py", runs_dir,
            f"beta={','.join(SWEEP_BETAS)}", f"seed={','.join(SWEEP_SEEDS)}", *(["--population"] if population else []),
            "--", f"--config.num_epochs={epochs}", *SWEEP_EVAL_FLAGS]


def whole_sweep(options: BenchOptions, say=print) -> dict:
    """The β sweep as separate runs and as one population: wall seconds of each whole command and the results."""
    from aejax.studies import sweep_summary
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    result = {"epochs": options.sweep_epochs, "seconds": {}, "tables": {}}
    with tempfile.TemporaryDirectory(prefix="aejax-bench-sweep-") as root:
        for name, population in (("separate", False), ("population", True)):
            runs = os.path.join(root, name)
            start = time.perf_counter()
            done = subprocess.run(_sweep_command(runs, options.sweep_epochs, population), cwd=repo,
                                  capture_output=True, text=True)
            result["seconds"][name] = time.perf_counter() - start
            if done.returncode != 0:
                raise RuntimeError(f"the {name} sweep failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
            say(f"  [population: the {name} sweep took {result['seconds'][name]:.0f}s]")
            keys, groups = sweep_summary.group(sweep_summary.collect(runs))
            result["tables"][name] = {
                values[0]: {metric: sweep_summary.mean_std(members, metric)[:2]
                            for metric in ("elbo", "log_px_iw", "kl", "active_units")}
                for values, members in groups.items()}
    return result


def section_population(ctx, options: BenchOptions) -> dict:
    result = {"throughput": population_rates(ctx, options)}
    if options.sweep_epochs > 0:
        result["sweep"] = whole_sweep(options)
    return result


def report_lines(result: dict, options: BenchOptions) -> list[str]:
    rates = result["throughput"]
    lines = [f"Populations of the canonical VAE (β and seed differ; {options.steps}-step chunks): members × examples/s",
             f"  one run (the trainer's chunk)        {rates['single_examples_per_sec']:12,.0f}",
             f"  matmul bound of one run              {rates['matmul_bound_examples_per_sec']:12,.0f}"]
    for size, row in rates["populations"].items():
        lines.append(f"  population of {size:<18s}   {row['member_examples_per_sec']:12,.0f}   "
                     f"{row['speedup_over_one_run']:5.2f}× one run   {row['fraction_of_matmul_bound']:6.1%} of the bound")
    sweep = result.get("sweep")
    if sweep:
        seconds = sweep["seconds"]
        lines += [f"The README's β sweep (β ∈ {{{', '.join(SWEEP_BETAS)}}} × seeds {{{', '.join(SWEEP_SEEDS)}}}, "
                  f"{sweep['epochs']} epochs, evaluated with {' '.join(SWEEP_EVAL_FLAGS)}), whole commands:",
                  f"  separate runs (2 at a time, pinned)   {seconds['separate']:8.0f} s",
                  f"  one population (--population)         {seconds['population']:8.0f} s",
                  f"  speed-up                              {seconds['separate'] / seconds['population']:8.2f}×   "
                  "(target ≥ 2×)",
                  "  β      ELBO separate      ELBO population    log p(x) separate   log p(x) population"]
        for beta in sweep["tables"]["separate"]:
            a, b = sweep["tables"]["separate"][beta], sweep["tables"]["population"].get(beta, {})
            cell = lambda stats: f"{stats[0]:8.2f} ± {stats[1]:.2f}" if stats else "–"  # noqa: E731
            lines.append(f"  {beta:<6s} {cell(a['elbo']):>17s} {cell(b.get('elbo')):>18s} "
                         f"{cell(a['log_px_iw']):>19s} {cell(b.get('log_px_iw')):>21s}")
    return lines + [""]
