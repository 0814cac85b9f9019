"""Evaluating several runs in one process, vmapped where it pays.

The runs are restored once and grouped into populations (runs whose programs
differ only in numbers: `aejax.training.population`). Within a population the
importance sampling of every member runs as one program over the members'
stacked parameters (vmapped on an accelerator, a loop inside the program on a
CPU: `over_members`), and the encoder passes of the disentanglement
metrics are shared by the members with one seed (they draw the same factors):
each batch of observations is rendered once and encoded for all of them in one
call. The rest of each run's report (reconstructions, clustering, probes)
is computed per run as `aejax.evaluate` computes it (one run per core at a time),
and each run gets its own eval.json. Same numbers as evaluating each run alone, to float tolerance (a
batched matmul may round differently).
"""
from __future__ import annotations

import collections
import concurrent.futures
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from aejax.core.batching import map_batches
from aejax.evaluation import factor_scores
from aejax.evaluation.evaluate_run import EvalOptions, Precomputed, evaluate_run, write_report
from aejax.evaluation.inputs import evaluation_split, load_eval_data
from aejax.evaluation.likelihood import estimate_in_batches, variant_estimates
from aejax.training.population import member_model, member_values, split_into_populations, stack, varying_keys
from aejax.training.restore import as_model_input, load


def _members_axis_last(tree):
    """[M, n, ...] → [n, M, ...], so map_batches can cut and join along the examples."""
    return jax.tree_util.tree_map(lambda leaf: jnp.swapaxes(leaf, 0, 1), tree)


def over_members(fn, num_shared: int = 2):
    """fn(member params, member values, *shared) over the stacked members: one program either way.

    Vmapped on an accelerator (one wide program keeps it busy); on a CPU a loop
    over the members inside the program (`lax.map`), whose batched intermediates
    would be M times larger than one run's and measured slower (README).
    """
    if jax.default_backend() != "cpu":
        return jax.vmap(fn, in_axes=(0, 0) + (None,) * num_shared)

    def looped(params, values, *shared):
        return jax.lax.map(lambda member: fn(member[0], member[1], *shared), (params, values))
    return looped


def population_likelihood_estimates(models, x: np.ndarray, options: EvalOptions) -> list[dict[str, np.ndarray]]:
    """Each model's per-example {"log_px", "elbo", "reconstruction"} on `x`, all members in one program."""
    configs = [m.config for m in models]
    base = configs[0]
    values = {k: jnp.asarray(v) for k, v in member_values(configs, varying_keys(configs)).items()}
    params = stack([m.params for m in models])

    def estimate(member_params, member_vals, batch, key):
        variant, model, _, member_config = member_model(base, member_vals)
        return variant_estimates(model, variant, member_config, member_params, batch, key,
                                 options.num_importance_samples, options.samples_per_chunk)

    vmapped = jax.jit(over_members(estimate, num_shared=2))
    per_example = estimate_in_batches(lambda batch, key: _members_axis_last(vmapped(params, values, batch, key)), x,
                                      num_samples=options.num_importance_samples, batch_size=options.batch_size,
                                      seed=options.seed)
    return [{k: v[:, i] for k, v in per_example.items()} for i in range(len(models))]


def population_codes(models):
    """images → codes [M, n, D] of every model (the point code: posterior mean for the VAE family)."""
    configs = [m.config for m in models]
    base, variant = configs[0], models[0].variant
    values = {k: jnp.asarray(v) for k, v in member_values(configs, varying_keys(configs)).items()}
    params = stack([m.params for m in models])

    def code(member_params, member_vals, images):
        _, model, _, _ = member_model(base, member_vals)
        encoded = model.apply(member_params, images, method="encode")
        return encoded[0] if variant.probabilistic_encoder else encoded

    vmapped = jax.jit(over_members(code, num_shared=1))

    def represent_all(images: np.ndarray) -> np.ndarray:
        codes = map_batches(lambda batch, i: _members_axis_last(vmapped(params, values, as_model_input(batch))),
                            images, factor_scores.ENCODE_CHUNK)
        return np.swapaxes(codes, 0, 1)

    return represent_all


def evaluate_population(workdirs: list[str], step: int | None = None,
                        options: EvalOptions = EvalOptions()) -> list[dict]:
    """Evaluate every run in `workdirs` (at `step`, default latest) and write each one's eval.json."""
    models = [load(workdir, step) for workdir in workdirs]
    reports: list[dict | None] = [None] * len(models)
    for group in split_into_populations([m.config for m in models]):
        members = [models[i] for i in group]
        config = members[0].config
        shared = [dict(trained=m) for m in members]
        start = time.perf_counter()
        if members[0].variant.probabilistic_encoder and options.num_importance_samples > 0:
            data = load_eval_data(config, evaluation_split(config), options.max_examples)
            for entry, estimates in zip(shared, population_likelihood_estimates(members, data.x, options)):
                entry["likelihood"] = estimates
        by_seed = collections.defaultdict(list)
        for position, m in enumerate(members):
            by_seed[int(m.config.seed)].append(position)

        def disentanglement(seed, positions):
            scores = factor_scores.shared_disentanglement_metrics(
                config.dataset, population_codes([members[p] for p in positions]), len(positions), seed=seed)
            for position, score in zip(positions, scores or [None] * len(positions)):
                shared[position]["disentanglement"] = score

        def finish(i, entry):
            reports[i] = evaluate_run(workdirs[i], step, options, Precomputed(**entry))
            write_report(workdirs[i], reports[i])

        # What follows is mostly numpy/sklearn work that releases the GIL (metrics' classifiers and
        # boosted trees, k-means, probes): one seed group, then one run, per core at a time.
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
            list(pool.map(disentanglement, by_seed, by_seed.values()))
            logging.info("evaluated the shared parts of %d runs in %.1fs", len(members),
                         time.perf_counter() - start)
            list(pool.map(finish, group, shared))
    return reports
