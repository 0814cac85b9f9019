"""The training loop: data → init → jitted chunk of steps → eval → checkpoint, resumable at any step.

`train_and_evaluate(config, workdir)` is what `python -m aejax.main` runs. The
pieces it strings together live in their own modules: the config
(`aejax.training.config`), the state (`state`), the pure step and the eval pass
(`step`), compiled chunks and their data feeds (`chunks`), checkpoints
(`checkpoint`), metrics (`writers`) and progress (`progress`); and what keeps a
run whole: the workdir's lock (`workdir`), the rules for resuming with a changed
config (`resume`), verified checkpoints (`checkpoint`, `integrity`) and a clean
stop on SIGTERM/SIGINT (`preemption`).
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable

import jax
import ml_collections
import numpy as np
from absl import logging

from aejax import objectives
from aejax.core import parallel, timing
from aejax.core.errors import ConfigError, Interrupted, NonFiniteLossError
from aejax.core.files import atomic_write
from aejax.data import batches, placement, splits
from aejax.figures import grids
from aejax.training import checkpoint, preemption, resume, writers
from aejax.training import workdir as workdir_lib
from aejax.training.chunks import FEEDS, chunk_schedule, state_shapes
from aejax.training.config import prepare_config, validate
from aejax.training.progress import Progress, format_seconds
from aejax.training.restore import TrainedModel
from aejax.training.state import check_memory, make_initializer, variant_optimizer
from aejax.training.step import EVAL_STREAM, make_evaluate, make_train_step, make_update

# CPU has no buffer donation; the request is still right for accelerators.
warnings.filterwarnings("ignore", message="Some donated buffers were not usable")


def save_figures(workdir, step, trained: TrainedModel, test_images, key, writer, test_labels=None) -> None:
    """Test inputs above their reconstructions; prior samples for generative models.

    `test_labels`: the images' classes, which a conditional model reconstructs with.
    """
    n = trained.config.num_figure_images
    num_cols = int(math.sqrt(n)) if n >= 16 else n
    images = np.asarray(batches.to_unit_interval(test_images[:n]))
    labels = None if test_labels is None else np.asarray(test_labels[:n])
    figures = {"reconstructions": grids.reconstruction_grid(trained, images, num_cols, labels)}
    if trained.variant.generative:
        figures["samples"] = grids.sample_grid(trained, key, n, num_cols)
    for name, grid in figures.items():
        grids.save_png(os.path.join(workdir, "figures", f"{name}_step{step:07d}.png"), grid)
    writer.write_images(step, {f"figures/{k}": v for k, v in figures.items()})


def scalar_metrics(metrics: dict[str, np.ndarray], prefix: str) -> dict[str, float]:
    """What metrics.jsonl records: the mean of each scalar (train: per-step) metric, named prefix/name."""
    return {f"{prefix}/{k}": float(np.mean(v)) for k, v in metrics.items() if np.ndim(v) <= 1 and
            (prefix == "train" or np.ndim(v) == 0)}


def first_non_finite(metrics: dict[str, np.ndarray], first_step: int) -> str | None:
    """'train/<name> is nan at step N' for the first step of a chunk with a non-finite metric, else None."""
    for name, values in metrics.items():
        values = np.asarray(values)
        bad = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
        if bad.any():
            return f"train/{name} is {values[np.argmax(bad)]} at step {first_step + int(np.argmax(bad)) + 1}"
    return None


def _check_finite(metrics: dict[str, np.ndarray], first_step: int, checkpointer) -> None:
    problem = first_non_finite(metrics, first_step)
    if problem:
        checkpointer.wait()
        raise NonFiniteLossError(
            f"{problem}; training stopped and the last good checkpoint (step {checkpointer.latest_step()}) "
            "is intact. Lower config.learning_rate or set config.grad_clip_norm.")


def _check_batch_divides(config, mesh) -> None:
    if config.batch_size % mesh.size:
        raise ConfigError(f"config.batch_size={config.batch_size} must be a multiple of the "
                          f"{mesh.size} devices it is split over (set config.num_devices, or "
                          "another batch size)")


def _compile_first_chunk(feed, abstract_state, mesh, latest_step: int, total_steps: int, chunk: int):
    """The first chunk's compile, running in a thread (a future), or None when the newest checkpoint says none is left.

    Started before the initial state is computed, from its shapes: on two cores
    the two programs (the chunk's is the largest of a run) compile side by side.
    """
    first = chunk_schedule(latest_step, total_steps, chunk)[:1]
    if not first:
        return None
    shapes = state_shapes(abstract_state, parallel.replicated(mesh))
    ahead = ThreadPoolExecutor(1, thread_name_prefix="aejax-compile-chunk")
    compiling = ahead.submit(feed.compile, shapes, first[0][1])
    ahead.shutdown(wait=False)
    return compiling


def _compile_ahead(evaluate, trained, state, test_data, eval_device) -> list:
    """Compiles evaluation (and the figures' programs) in a background thread, while the first chunks train.

    XLA compiles without holding Python's lock, so on a machine with a core to
    spare the first evaluation no longer waits for its compile.
    The thread sees only shapes: on one device `local` is the state's own buffers,
    which the first chunk donates (deletes) while the thread may still be lowering.
    """
    local = parallel.local_copy(state, eval_device)
    shapes = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding) if isinstance(x, jax.Array) else x,
        local)
    ahead = ThreadPoolExecutor(1, thread_name_prefix="aejax-compile-ahead")
    compiling = [ahead.submit(evaluate.compile, shapes.params, test_data, shapes.rng, shapes.step)]
    if trained is not None:
        key = jax.random.fold_in(local.rng, EVAL_STREAM)  # a new array: the chunk does not donate it
        compiling.append(ahead.submit(trained.compile_figures, trained.config.num_figure_images, key,
                                      shapes.params))
    ahead.shutdown(wait=False)
    return compiling


class _NoWriter:
    """What processes other than 0 write: nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def restore_or_start(workdir: str, config: ml_collections.ConfigDict, checkpointer: checkpoint.Checkpointer,
                     state, allowed: frozenset[str]) -> tuple[int, Any]:
    """A run's starting (step, state): its newest checkpoint that verifies, else `state` at step 0.

    The checkpoint's config is checked against `config` (changes in keys not
    resumable and not `allowed` are refused in one line); accepted changes are
    recorded in the workdir's config history, and config.json is written only then.
    """
    changes: resume.Changes = {}

    def accept(step: int, meta: dict) -> None:
        changes.clear()
        changes.update(resume.check_resume(meta["config"], config.to_dict(), step, allowed, workdir))
        changes.update(resume.draw_changes(meta, config.to_dict()))

    restored = checkpointer.restore_newest_good(state, config.to_dict(), accept)
    step = 0
    if restored is not None:
        step, state = restored
        logging.info("%s: resumed from the checkpoint at step %d (verified)", workdir, step)
    if parallel.is_main_process():  # the run is accepted: record what it changed, and the config it runs
        if changes:
            workdir_lib.append_history(workdir, resume.history_record(step, changes, allowed))
            loud = set(changes) & (allowed | {batches.DRAW_METADATA_KEY})  # loud if numbers change
            say = logging.warning if loud else logging.info
            say("resuming at step %d with config changes (recorded in %s): %s", step, workdir_lib.HISTORY_FILE,
                "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items()))
        atomic_write(os.path.join(workdir, "config.json"), json.dumps(config.to_dict(), indent=2))
    return step, state


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       allow_config_change: str | Iterable[str] | None = None) -> dict[str, Any]:
    """Train `config` in `workdir`, resuming from its newest good checkpoint; return final eval.

    Runs data-parallel over `config.num_devices` devices (0 = every device of
    every process); only process 0 writes metrics, figures and config.json. The
    workdir is locked for the run. A resume whose config computes something else
    than the checkpoint's is refused unless `allow_config_change` names the keys
    ('a,b' or a list; `aejax.training.resume`). SIGTERM/SIGINT save a checkpoint
    and raise `Interrupted`.
    """
    clock = timing.Breakdown()  # start-up, data, init, ...: one line at the end of the log
    config = validate(config)
    allowed = resume.parse_allowed(allow_config_change)
    with workdir_lib.claim(workdir):
        if parallel.is_main_process():
            workdir_lib.remove_unfinished_checkpoints(os.path.join(workdir, "checkpoints"))
        parallel.sync_processes("aejax: workdir claimed")
        return _train(config, workdir, allowed, clock)


def _train(config: ml_collections.ConfigDict, workdir: str, allowed: frozenset[str],
           clock: timing.Breakdown) -> dict[str, Any]:
    main_process = parallel.is_main_process()
    variant = objectives.get(config.model)
    mesh = parallel.make_mesh(config.num_devices)
    _check_batch_divides(config, mesh)
    eval_device = jax.local_devices()[0]

    # ---- input: the training split where `data_placement` says; the test split on one device.
    where = placement.choose_placement(config, mesh)
    train_split = placement.load_train_split(config, where)
    test_split = splits.load_eval(config)  # "test", or what the dataset declares
    config = prepare_config(config, train_split)
    total_steps = config.num_train_steps
    test_data = placement.put_on_device(test_split, eval_device)
    logging.info("%s: %d train / %d eval images of shape %s; %d steps of batch %d; data on the %s "
                 "(%s); %d devices in %d processes", config.dataset, train_split.num_examples,
                 test_split.num_examples, train_split.image_shape, total_steps, config.batch_size,
                 where, config.data_placement, mesh.size, jax.process_count())
    clock.lap("data")

    # ---- model, optimiser and the first chunk's program, compiled in a thread while the initial state's compiles.
    model = variant.build_model(config, config.image_shape)
    optimizer = variant_optimizer(variant, config, total_steps)
    init, seed_key = make_initializer(config, variant, model, optimizer), jax.random.PRNGKey(config.seed)
    abstract_state = jax.eval_shape(init, seed_key)  # traced once: the call below reuses the trace
    check_memory(config, abstract_state, placement.device_memory_bytes(eval_device), str(eval_device))
    chunk = math.gcd(config.log_every_steps, config.eval_every_steps, config.checkpoint_every_steps)
    train_step = make_train_step(make_update(variant, model, config, optimizer, total_steps))
    feed = FEEDS[where](train_step, config, train_split, mesh)
    checkpointer = checkpoint.Checkpointer(workdir, max_to_keep=config.keep_checkpoints)
    chunk_compiling = _compile_first_chunk(feed, abstract_state, mesh, checkpointer.latest_step() or 0,
                                           total_steps, chunk)

    # ---- the state: restored from the newest checkpoint that verifies, if any.
    state = jax.device_put(init(seed_key), parallel.replicated(mesh))
    with workdir_lib.disk_errors_in_one_line(workdir, checkpointer.latest_finished):  # the run's first writes
        step, state = restore_or_start(workdir, config, checkpointer, state, allowed)
        writer = writers.MetricWriter(workdir) if main_process else _NoWriter()
        writer.truncate_after(step)
    num_params = sum(x.size for x in jax.tree_util.tree_leaves(state.params))
    logging.info("model %r: %d parameters", config.model, num_params)
    clock.lap("init")

    # ---- evaluation's programs, compiled ahead while the first chunks train.
    schedule = chunk_schedule(step, total_steps, chunk)
    feed.start(state, schedule)
    evaluate = make_evaluate((variant.make_eval_loss or variant.make_loss)(model, config), config)
    trained = TrainedModel(config, state.params, step) if main_process else None  # figures; params set per eval
    compiling = _compile_ahead(evaluate, trained, state, test_data, eval_device) if schedule else []
    if chunk_compiling is not None:  # ready before the first call (else it compiles twice), or its error raised here
        chunk_compiling.result()

    # ---- loop.
    progress = Progress(total_steps, step, config.batch_size)
    start, first_step_time, eval_metrics = time.perf_counter(), None, {}
    train_seconds, timed_steps = 0.0, 0  # time inside training chunks only
    train_metrics: list[dict[str, np.ndarray]] = []
    stop = 0
    with preemption.StopSignals() as signals, \
            workdir_lib.disk_errors_in_one_line(workdir, checkpointer.latest_finished):
        for first_step, num_steps in schedule:
            chunk_start = time.perf_counter()
            state, metrics = feed(state, first_step, num_steps)
            metrics = jax.device_get(parallel.local_copy(metrics))
            clock.lap("train" if first_step_time is not None else "first chunk")
            if first_step_time is not None:  # steady state: compile excluded
                train_seconds += time.perf_counter() - chunk_start
                timed_steps += num_steps
            _check_finite(metrics, step, checkpointer)
            step += num_steps
            checkpointer.check(step, state)  # a failed background save, or a full disk, stops the run now
            if first_step_time is None:
                first_step_time = time.perf_counter() - start
                logging.info("first chunk of %d steps finished %.1fs after start (compile included)",
                             num_steps, first_step_time)
                progress.start(step)
            train_metrics.append(metrics)
            progress.update(step, f"loss {float(np.mean(metrics['loss'])):.2f}")
            done = step == total_steps
            stop = 0 if done else signals.requested()  # the same in every process
            if step % config.log_every_steps == 0 or done or stop:
                merged = {k: np.concatenate([m[k] for m in train_metrics]) for k in train_metrics[0]}
                rates = {} if not timed_steps else {
                    "train/steps_per_sec": timed_steps / train_seconds,
                    "train/examples_per_sec": timed_steps * config.batch_size / train_seconds}
                writer.write(step, {**scalar_metrics(merged, "train"), **rates})
                train_metrics = []
            if step % config.eval_every_steps == 0 or done:
                for future in compiling:  # compiled ahead: ready, or what went wrong is raised here
                    future.result()
                compiling = []
                local = parallel.local_copy(state, eval_device)
                eval_metrics = evaluate(local.params, test_data, local.rng, local.step)
                writer.write(step, {f"eval/{k}": v for k, v in eval_metrics.items()})
                clock.lap("eval")
                if main_process:
                    trained.params, trained.step = local.params, step
                    save_figures(workdir, step, trained, test_split.images,
                                 jax.random.fold_in(local.rng, EVAL_STREAM), writer, test_split.labels)
                    clock.lap("figures")
                logging.info("step %d eval: %s", step, ", ".join(
                    f"{k} {float(v):.3f}" for k, v in eval_metrics.items() if np.ndim(v) == 0))
            if step % config.checkpoint_every_steps == 0 or done or stop:
                checkpointer.save(step, state, config.to_dict())
                clock.lap("checkpoint")
            if stop:
                break
        progress.close()
        checkpointer.close()
        clock.lap("checkpoint")
        writer.close()
    elapsed = time.perf_counter() - start
    if stop:
        raise Interrupted(f"stopped by {preemption.name_of(stop)} after step {step} of {total_steps}: "
                          f"checkpoint saved in {checkpointer.directory}/{step}; rerun the same command "
                          "to resume", stop)
    if not schedule:
        logging.info("nothing to train: the checkpoint is at step %d = num_train_steps", step)
    logging.info("finished %d steps in %s", total_steps, format_seconds(elapsed))
    logging.info("time: %s", clock.summary())
    return {k: np.asarray(v) for k, v in eval_metrics.items()}
