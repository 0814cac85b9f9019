"""Training a population: one vmapped program, and one workdir per member written as its separate run writes it.

Each member's workdir gets what `train_and_evaluate` would leave (config.json,
metrics.jsonl, TensorBoard events, figures, orbax checkpoints), so `aejax.load`,
`aejax.evaluate`, `aejax.inspect` and `aejax.sweep_summary` work on it unchanged.

Resume is per member: each restores its own latest checkpoint. Members may stand
at different steps (a kill between two members' saves); a chunk then updates only
the members at its first step and leaves the others as they are, until all stand
together again. Every member's numbers depend only on its own state and on the
compiled program, so a killed and resumed population ends bit-equal to an
uninterrupted one. A member whose loss turns non-finite stops (its last good
checkpoint stays); the others go on.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from aejax.core import parallel
from aejax.core.errors import ConfigError, NonFiniteLossError
from aejax.data import placement, splits
from aejax.training import checkpoint, writers
from aejax.training.chunks import chunk_schedule
from aejax.training.config import prepare_config, validate
from aejax.training.loop import first_non_finite, save_figures, scalar_metrics
from aejax.training.population import build_program, member, split_into_populations, stack
from aejax.training.progress import Progress, format_seconds
from aejax.training.restore import TrainedModel
from aejax.training.step import EVAL_STREAM


@dataclasses.dataclass
class Member:
    """One member's run: its config, workdir, writers and where it stands."""
    config: ml_collections.ConfigDict
    workdir: str
    checkpointer: checkpoint.Checkpointer
    writer: Any
    step: int = 0
    error: str | None = None
    train_metrics: list = dataclasses.field(default_factory=list)
    eval_metrics: dict = dataclasses.field(default_factory=dict)


class _NoWriter:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None


@jax.jit
def _keep_inactive(active, new_states, old_states):
    """Each member's new state where it trained this chunk, its old one where it waited."""
    def select(new, old):
        return jnp.where(active.reshape(-1, *([1] * (new.ndim - 1))), new, old)
    return jax.tree_util.tree_map(select, new_states, old_states)


def _prepare(configs, workdirs):
    """Validated configs of one population, the mesh, and the data (the training split on the device)."""
    if len(configs) != len(workdirs) or not configs:
        raise ValueError("give one workdir per config")
    if len(set(map(os.path.abspath, workdirs))) != len(workdirs):
        raise ConfigError("two members of a population share a workdir; give each its own")
    configs = [validate(c) for c in configs]
    populations = split_into_populations(configs)
    if len(populations) > 1:
        raise ConfigError(f"these {len(configs)} runs cannot train as one program; they form the populations "
                          f"{populations} (aejax.training.population.split_into_populations): train each apart")
    mesh = parallel.make_mesh(configs[0].num_devices)
    if configs[0].batch_size % mesh.size:
        raise ConfigError(f"config.batch_size={configs[0].batch_size} must be a multiple of the {mesh.size} "
                          "devices it is split over")
    where = placement.choose_placement(configs[0], mesh)
    if where != "device":
        raise ConfigError(f"a population keeps the training split on the device, but data_placement resolves to "
                          f"{where!r} for {configs[0].dataset!r}: train these runs apart (python -m aejax.main)")
    train_split = splits.load(configs[0], "train")
    return [prepare_config(c, train_split) for c in configs], mesh, train_split, splits.load_eval(configs[0])


def train_population(configs, workdirs) -> list[dict[str, Any]]:
    """Train `configs` (one population) in `workdirs`, resuming each member from its latest checkpoint.

    Returns, per member, {"workdir", "step", "eval": final eval metrics, "error": None or why it stopped}.
    Raises NonFiniteLossError if every member stopped on a non-finite loss.
    """
    configs, mesh, train_split, test_split = _prepare(configs, workdirs)
    base, main_process, eval_device = configs[0], parallel.is_main_process(), jax.local_devices()[0]
    members = []
    for config, workdir in zip(configs, workdirs):
        if main_process:
            os.makedirs(workdir, exist_ok=True)
            with open(os.path.join(workdir, "config.json"), "w") as f:
                json.dump(config.to_dict(), f, indent=2)
        members.append(Member(config, workdir, checkpoint.Checkpointer(workdir, max_to_keep=config.keep_checkpoints),
                              writers.MetricWriter(workdir) if main_process else _NoWriter()))

    program = build_program(configs, train_split.num_examples, mesh)
    replicated = parallel.replicated(mesh)
    keys = jnp.stack([jax.random.PRNGKey(c.seed) for c in configs])
    states = jax.device_put(program.init(program.values, keys), replicated)
    if any(m.checkpointer.latest_step() is not None for m in members):
        states = jax.device_put(stack([
            m.checkpointer.restore(member(states, i), m.config.to_dict())
            if m.checkpointer.latest_step() is not None else member(states, i)
            for i, m in enumerate(members)]), replicated)
    for i, m in enumerate(members):
        m.step = int(parallel.local_copy(member(states, i).step))
        m.writer.truncate_after(m.step)
    logging.info("population of %d members (%s vary) at steps %s; %s: %d train / %d eval images, %d steps of "
                 "batch %d on %d devices", len(members), ", ".join(program.values) or "only the seed",
                 sorted({m.step for m in members}), base.dataset, train_split.num_examples, test_split.num_examples,
                 base.num_train_steps, base.batch_size, mesh.size)

    train_data = placement.put_on_device(train_split, replicated)
    test_data = placement.put_on_device(test_split, eval_device)
    total = base.num_train_steps
    chunk = math.gcd(base.log_every_steps, base.eval_every_steps, base.checkpoint_every_steps)
    start_step = min(m.step for m in members)
    progress = Progress(total, start_step, base.batch_size * len(members), description=f"{len(members)} members")
    start, first_chunk_time = time.perf_counter(), None
    train_seconds, timed_steps = 0.0, 0
    for first_step, num_steps in chunk_schedule(start_step, total, chunk):
        active = [m.step == first_step and m.error is None for m in members]
        if not any(active):
            continue
        chunk_start = time.perf_counter()
        new_states, metrics = program.chunk(states, train_data.images, train_data.labels, num_steps)
        states = _keep_inactive(jnp.asarray(active), new_states, states)
        metrics = jax.device_get(parallel.local_copy(metrics))  # {name: [steps, M, ...]}
        if first_chunk_time is None:
            first_chunk_time = time.perf_counter() - start
            logging.info("first chunk of %d steps finished %.1fs after start (compile included)",
                         num_steps, first_chunk_time)
            progress.start(first_step + num_steps)
        else:
            train_seconds += time.perf_counter() - chunk_start
            timed_steps += num_steps
        step, done = first_step + num_steps, first_step + num_steps == total
        updated = [i for i, m in enumerate(members) if active[i]]
        for i in updated:
            own = {k: v[:, i] for k, v in metrics.items()}
            members[i].error = first_non_finite(own, first_step)
            if members[i].error:
                logging.error("%s: %s; this member stopped, its last good checkpoint (step %s) is intact",
                              members[i].workdir, members[i].error, members[i].checkpointer.latest_step())
                continue
            members[i].step = step
            members[i].train_metrics.append(own)
        updated = [i for i in updated if members[i].error is None]
        progress.update(step, f"loss {np.mean([np.mean(metrics['loss'][:, i]) for i in updated] or [np.nan]):.2f}")
        if step % base.log_every_steps == 0 or done:
            rates = {} if not timed_steps else {"train/steps_per_sec": timed_steps / train_seconds,
                                                "train/examples_per_sec": timed_steps * base.batch_size / train_seconds}
            for i in updated:
                m = members[i]
                merged = {k: np.concatenate([t[k] for t in m.train_metrics]) for k in m.train_metrics[0]}
                m.writer.write(step, {**scalar_metrics(merged, "train"), **rates})
                m.train_metrics = []
        if (step % base.eval_every_steps == 0 or done) and updated:
            local = parallel.local_copy(states, eval_device)
            evaluated = program.evaluate(local.params, test_data, local.rng, local.step)
            for i in updated:
                m = members[i]
                m.eval_metrics = {k: v[i] for k, v in evaluated.items()}
                m.writer.write(step, {f"eval/{k}": v for k, v in m.eval_metrics.items()})
                if main_process:
                    own = member(local, i)
                    save_figures(m.workdir, step, TrainedModel(m.config, own.params, step), test_data.images,
                                 jax.random.fold_in(own.rng, EVAL_STREAM), m.writer)
            logging.info("step %d eval, %d members: elbo %s", step, len(updated), " ".join(
                f"{float(members[i].eval_metrics.get('elbo', np.nan)):.2f}" for i in updated))
        if step % base.checkpoint_every_steps == 0 or done:
            for i in updated:
                members[i].checkpointer.save(step, member(states, i), members[i].config.to_dict())
    progress.close()
    for m in members:
        m.checkpointer.close()
        m.writer.close()
    logging.info("population of %d finished %d steps in %s", len(members), total,
                 format_seconds(time.perf_counter() - start))
    if all(m.error for m in members):
        raise NonFiniteLossError(f"every member of the population stopped: {members[0].error} (first member)")
    return [{"workdir": m.workdir, "step": m.step, "error": m.error,
             "eval": {k: np.asarray(v) for k, v in m.eval_metrics.items()}} for m in members]
