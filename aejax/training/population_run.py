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

import contextlib
import dataclasses
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
from aejax.core.errors import ConfigError, Interrupted, NonFiniteLossError
from aejax.data import placement, splits
from aejax.training import checkpoint, preemption, resume, writers
from aejax.training import workdir as workdir_lib
from aejax.training.chunks import chunk_schedule
from aejax.training.config import prepare_config, validate
from aejax.training.loop import first_non_finite, restore_or_start, save_figures, scalar_metrics
from aejax.training.population import (MemberOrders, build_program, member, split_into_populations, stack,
                                       varying_keys)
from aejax.training.progress import Progress, format_seconds
from aejax.training.restore import TrainedModel
from aejax.training.state import check_memory
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


def train_population(configs, workdirs, allow_config_change=None, vectorize: bool | None = None
                     ) -> list[dict[str, Any]]:
    """Train `configs` (one population) in `workdirs`, resuming each member from its newest good checkpoint.

    Every member's workdir is locked, checked and written as `train_and_evaluate`
    does it (config changes on resume refused unless `allow_config_change` names
    them; damaged checkpoints skipped; SIGTERM/SIGINT save every member and raise
    `Interrupted`; a full disk stops the run in one line). Returns, per member,
    {"workdir", "step", "eval": final eval metrics, "error": None or why it stopped}.
    Raises NonFiniteLossError if every member stopped on a non-finite loss. `vectorize`:
    one vmapped program (default on an accelerator) or the members side by side
    (default on a CPU: bit-equal to separate runs); see `build_program`.
    """
    allowed = resume.parse_allowed(allow_config_change)
    with contextlib.ExitStack() as claims:
        for workdir in workdirs:
            claims.enter_context(workdir_lib.claim(workdir))
            if parallel.is_main_process():
                workdir_lib.remove_unfinished_checkpoints(os.path.join(workdir, "checkpoints"))
        parallel.sync_processes("aejax: population workdirs claimed")
        return _train_population(configs, workdirs, allowed, vectorize)


def _train_population(configs, workdirs, allowed, vectorize) -> list[dict[str, Any]]:
    configs, mesh, train_split, test_split = _prepare(configs, workdirs)
    base, main_process, eval_device = configs[0], parallel.is_main_process(), jax.local_devices()[0]
    program = build_program(configs, mesh, vectorize)
    replicated = parallel.replicated(mesh)
    keys = jnp.stack([jax.random.PRNGKey(c.seed) for c in configs])
    initial = jax.eval_shape(program.init, program.values, keys)
    check_memory(base, initial, placement.device_memory_bytes(eval_device), str(eval_device))
    states = jax.device_put(program.init(program.values, keys), replicated)

    members, member_states = [], []
    for i, (config, workdir) in enumerate(zip(configs, workdirs)):
        checkpointer = checkpoint.Checkpointer(workdir, max_to_keep=config.keep_checkpoints)
        with workdir_lib.disk_errors_in_one_line(workdir, checkpointer.latest_finished):  # its first writes
            step, state = restore_or_start(workdir, config, checkpointer, member(states, i), allowed)
            writer = writers.MetricWriter(workdir) if main_process else _NoWriter()
            writer.truncate_after(step)
        members.append(Member(config, workdir, checkpointer, writer, step))
        member_states.append(state)
    states = jax.device_put(stack(member_states), replicated)
    del member_states  # the unstacked copies: a member's state of a big model is hundreds of MB
    logging.info("population of %d members (%s vary) at steps %s; %s: %d train / %d eval images, %d steps of "
                 "batch %d on %d devices", len(members), ", ".join(varying_keys(configs)) or "only the seed",
                 sorted({m.step for m in members}), base.dataset, train_split.num_examples, test_split.num_examples,
                 base.num_train_steps, base.batch_size, mesh.size)

    orders = MemberOrders(parallel.local_copy(states.rng), train_split.num_examples, base.batch_size)
    train_data = placement.put_on_device(train_split, replicated)
    test_data = placement.put_on_device(test_split, eval_device)
    del train_split, test_split  # the host copies (dSprites: 3 GB), now that the device holds the data
    figures = [TrainedModel(m.config, None) if main_process else None for m in members]
    total = base.num_train_steps
    chunk = math.gcd(base.log_every_steps, base.eval_every_steps, base.checkpoint_every_steps)
    start_step = min(m.step for m in members)
    progress = Progress(total, start_step, base.batch_size * len(members), description=f"{len(members)} members")
    start, first_chunk_time = time.perf_counter(), None
    train_seconds, timed_steps, stop, step = 0.0, 0, 0, start_step
    with preemption.StopSignals() as signals, \
            workdir_lib.disk_errors_in_one_line(workdirs[0], members[0].checkpointer.latest_finished):
        for first_step, num_steps in chunk_schedule(start_step, total, chunk):
            active = [m.step == first_step and m.error is None for m in members]
            if not any(active):
                continue
            chunk_start = time.perf_counter()
            states, metrics = program.chunk(states, train_data.images, train_data.labels,
                                            orders.indices(first_step, num_steps), active)
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
            updated = _record_chunk(members, active, metrics, first_step, step)
            for i in updated:
                members[i].checkpointer.check(step, member(states, i))  # a failed save or a full disk stops now
            progress.update(step, f"loss {np.mean([np.mean(metrics['loss'][:, i]) for i in updated] or [np.nan]):.2f}")
            stop = 0 if done else signals.requested()
            if step % base.log_every_steps == 0 or done or stop:
                rates = {} if not timed_steps else {"train/steps_per_sec": timed_steps / train_seconds,
                                                    "train/examples_per_sec": timed_steps * base.batch_size / train_seconds}
                for i in updated:
                    m = members[i]
                    merged = {k: np.concatenate([t[k] for t in m.train_metrics]) for k in m.train_metrics[0]}
                    m.writer.write(step, {**scalar_metrics(merged, "train"), **rates})
                    m.train_metrics = []
            if (step % base.eval_every_steps == 0 or done) and updated:
                _evaluate(program, members, updated, states, test_data, eval_device, figures, step)
            if step % base.checkpoint_every_steps == 0 or done or stop:
                for i in updated:
                    members[i].checkpointer.save(step, member(states, i), members[i].config.to_dict())
            if stop:
                break
        progress.close()
        for m in members:
            m.checkpointer.close()
            m.writer.close()
    if stop:
        raise Interrupted(f"stopped by {preemption.name_of(stop)} after step {step} of {total}: every member's "
                          f"checkpoint saved ({', '.join(workdirs)}); rerun the same command to resume", stop)
    logging.info("population of %d finished %d steps in %s", len(members), total,
                 format_seconds(time.perf_counter() - start))
    if all(m.error for m in members):
        raise NonFiniteLossError(f"every member of the population stopped: {members[0].error} (first member)")
    return [{"workdir": m.workdir, "step": m.step, "error": m.error,
             "eval": {k: np.asarray(v) for k, v in m.eval_metrics.items()}} for m in members]


def _record_chunk(members: list[Member], active: list[bool], metrics: dict, first_step: int, step: int) -> list[int]:
    """Advance the members that trained this chunk, stopping those whose loss went non-finite; the advanced ones."""
    updated = []
    for i, m in enumerate(members):
        if not active[i]:
            continue
        own = {k: v[:, i] for k, v in metrics.items()}
        m.error = first_non_finite(own, first_step)
        if m.error:
            logging.error("%s: %s; this member stopped, its last good checkpoint (step %s) is intact",
                          m.workdir, m.error, m.checkpointer.latest_step())
            continue
        m.step = step
        m.train_metrics.append(own)
        updated.append(i)
    return updated


def _evaluate(program, members, updated, states, test_data, eval_device, figures, step) -> None:
    """The eval pass of every member at once; each updated member's record and figures."""
    local = parallel.local_copy(states, eval_device)
    evaluated = program.evaluate(local.params, test_data, local.rng, local.step)
    for i in updated:
        m = members[i]
        m.eval_metrics = {k: v[i] for k, v in evaluated.items()}
        m.writer.write(step, {f"eval/{k}": v for k, v in m.eval_metrics.items()})
        if figures[i] is not None:
            own = member(local, i)
            figures[i].params, figures[i].step = own.params, step
            save_figures(m.workdir, step, figures[i], test_data.images, jax.random.fold_in(own.rng, EVAL_STREAM),
                         m.writer, test_data.labels)
    logging.info("step %d eval, %d members: elbo %s", step, len(updated), " ".join(
        f"{float(members[i].eval_metrics.get('elbo', np.nan)):.2f}" for i in updated))
