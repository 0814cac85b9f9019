"""Training loop: data → init → jitted chunk of steps (lax.scan) → eval → checkpoint.

One pure train step serves every variant: the variant supplies the loss
function and (optionally) its optimiser; the step differentiates, updates and
advances the step counter. A variant whose update is not one gradient of one
loss (the sequential phases of an adversarial AE) supplies its own `update`
instead; the step around it, the scan, keys and checkpoints stay shared. Keys are never stored per step: the key of step t
is fold_in(rng, t), so any step can be replayed exactly after a resume.
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from aejax import checkpoint, figures, optim, registry, writers
from aejax.config_validation import ConfigError, validate
from aejax.data import pipeline
from aejax.restore import TrainedModel
from aejax.progress import Progress, format_seconds
from aejax.state import TrainState

# CPU has no buffer donation; the request is still right for accelerators.
warnings.filterwarnings("ignore", message="Some donated buffers were not usable")

# Sub-streams of the run's key, so data order, step noise and eval noise never share a key.
PERMUTATION_STREAM, STEP_STREAM, EVAL_STREAM = 0, 1, 2


class NonFiniteLossError(FloatingPointError):
    """A loss or metric became NaN/Inf; training stopped before saving it."""


# ---------------------------------------------------------------- state ----

def _make_optimizer(variant, config, total_steps):
    if variant.make_optimizer is not None:
        return variant.make_optimizer(config, total_steps)
    return optim.make_optimizer(config, total_steps)


def create_train_state(config, variant, model, optimizer, key) -> TrainState:
    """Initial params from `init_key`; the remaining key drives every step."""
    init_key, rng = jax.random.split(key)
    sample = jnp.zeros((2, *config.image_shape), jnp.float32)
    params_key, dummy_key = jax.random.split(init_key)
    params = model.init(params_key, *variant.init_inputs(config, sample, dummy_key))
    return TrainState(step=jnp.asarray(0, jnp.int32), params=params,
                      opt_state=optimizer.init(params), rng=rng)


def abstract_train_state(config: ml_collections.ConfigDict) -> TrainState:
    """Shapes and dtypes of the train state of `config`, without computing it."""
    variant = registry.get(config.model)
    model = variant.build_model(config, tuple(config.image_shape))
    optimizer = _make_optimizer(variant, config, total_steps=1)
    return jax.eval_shape(
        lambda key: create_train_state(config, variant, model, optimizer, key),
        jax.random.PRNGKey(0))


# ----------------------------------------------------------------- step ----

def gradient_update(loss_fn, optimizer):
    """The default update: one gradient of the variant's loss, one optimiser step."""

    def update(params, opt_state, batch, key, step):
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (_, metrics), grads = grad_fn(params, batch, key, step)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, metrics

    return update


def make_update(variant, model, config, optimizer, total_steps):
    """The variant's own update (e.g. the phases of an adversarial AE), else `gradient_update`."""
    if variant.make_update is not None:
        return variant.make_update(model, config, total_steps)
    return gradient_update(variant.make_loss(model, config), optimizer)


def make_train_step(update):
    """state, batch, key → state, metrics: one update, the step counter advanced."""

    def train_step(state: TrainState, batch, key):
        params, opt_state, metrics = update(state.params, state.opt_state, batch, key, state.step)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return train_step


def make_train_chunk(train_step, config, num_examples: int):
    """(state, images, labels, num_steps) → (state, per-step metrics).

    The batches of `num_steps` consecutive steps are gathered on the device
    and the steps run as one jitted `lax.scan`: one dispatch per chunk. With
    `config.scan_steps=False` each step is its own jitted call instead (same
    batches, keys and maths): XLA:CPU runs convolutions inside a loop body
    10-30x slower than outside one (jax-ml/jax#12868), so conv configs on CPU
    turn the scan off.
    """
    batch_size, binarize = config.batch_size, config.binarize

    def chunk_indices(state: TrainState, num_steps: int):
        permutation_key = jax.random.fold_in(state.rng, PERMUTATION_STREAM)
        return pipeline.batch_indices(permutation_key, state.step, num_steps, num_examples, batch_size)

    def one_step(state: TrainState, batch_indices, images, labels):
        step_stream = jax.random.fold_in(state.rng, STEP_STREAM)
        data_key, loss_key = jax.random.split(jax.random.fold_in(step_stream, state.step))
        batch = {"image": pipeline.preprocess(images[batch_indices], data_key, binarize),
                 "label": labels[batch_indices]}
        return train_step(state, batch, loss_key)

    if config.get("scan_steps", True):
        def train_chunk(state: TrainState, images, labels, num_steps: int):
            return jax.lax.scan(lambda state, batch_indices: one_step(state, batch_indices, images, labels),
                                state, chunk_indices(state, num_steps))

        return jax.jit(train_chunk, static_argnums=3, donate_argnums=0)

    jitted_indices, jitted_step = jax.jit(chunk_indices, static_argnums=1), jax.jit(one_step, donate_argnums=0)

    def train_chunk_stepwise(state: TrainState, images, labels, num_steps: int):
        indices, metrics = jitted_indices(state, num_steps), []
        for batch_indices in indices:
            state, step_metrics = jitted_step(state, batch_indices, images, labels)
            metrics.append(step_metrics)
        return state, jax.tree_util.tree_map(lambda *values: jnp.stack(values), *metrics)

    return train_chunk_stepwise


# ----------------------------------------------------------------- eval ----

def make_evaluate(eval_loss_fn, config):
    """(params, split, rng, step) → metrics averaged over every test example.

    Full batches run as one scan; a remainder batch (if any) runs as a second
    compiled shape. Noise (dynamic binarisation, z samples) uses a key that
    depends only on the batch index, so evals at different steps compare.
    """
    binarize = config.binarize

    @jax.jit
    def evaluate_batches(params, images, labels, key, step):
        def body(_, inputs):
            batch_images, batch_labels, index = inputs
            data_key, loss_key = jax.random.split(jax.random.fold_in(key, index))
            batch = {"image": pipeline.preprocess(batch_images, data_key, binarize),
                     "label": batch_labels}
            return None, eval_loss_fn(params, batch, loss_key, step)[1]
        return jax.lax.scan(body, None, (images, labels, jnp.arange(images.shape[0])))[1]

    def evaluate(params, split: pipeline.Split, rng, step) -> dict[str, np.ndarray]:
        key = jax.random.fold_in(rng, EVAL_STREAM)
        batch_size = min(config.eval_batch_size, split.num_examples)
        num_full = split.num_examples // batch_size
        full = num_full * batch_size
        parts = [(split.images[:full].reshape(num_full, batch_size, *split.image_shape),
                  split.labels[:full].reshape(num_full, batch_size), key)]
        if full < split.num_examples:
            parts.append((split.images[None, full:], split.labels[None, full:],
                          jax.random.fold_in(key, num_full)))
        totals, count = None, 0
        for images, labels, part_key in parts:
            metrics = jax.device_get(evaluate_batches(params, images, labels, part_key, step))
            weight = images.shape[1]
            summed = {k: np.sum(v, axis=0) * weight for k, v in metrics.items()}
            totals = summed if totals is None else {k: totals[k] + summed[k] for k in totals}
            count += weight * images.shape[0]
        return {k: v / count for k, v in totals.items()}

    return evaluate


def save_figures(workdir, step, trained: TrainedModel, test_images, key, writer) -> None:
    """Test inputs above their reconstructions; prior samples for generative models."""
    n = trained.config.num_figure_images
    num_cols = int(math.sqrt(n)) if n >= 16 else n
    x = pipeline.to_unit_interval(test_images[:n])
    grids = {"reconstructions": figures.image_grid(
        figures.interleave_rows(np.asarray(x), np.asarray(trained.reconstruct(x)), num_cols),
        num_cols)}
    if trained.variant.generative:
        grids["samples"] = figures.image_grid(np.asarray(trained.sample(key, n)), num_cols)
    for name, grid in grids.items():
        figures.save_png(os.path.join(workdir, "figures", f"{name}_step{step:07d}.png"), grid)
    writer.write_images(step, {f"figures/{k}": v for k, v in grids.items()})


# ----------------------------------------------------------------- loop ----

def prepare_config(config: ml_collections.ConfigDict, train: pipeline.Split) -> ml_collections.ConfigDict:
    """The config as the run uses it: validated, plus fields derived from the data."""
    config = ml_collections.ConfigDict(config.to_dict())
    config.image_shape = train.image_shape
    if config.batch_size > train.num_examples:
        raise ConfigError(f"config.batch_size={config.batch_size} exceeds the "
                          f"{train.num_examples} training examples of {config.dataset!r}")
    steps_per_epoch = train.num_examples // config.batch_size
    if config.num_train_steps == -1:
        config.num_train_steps = config.num_epochs * steps_per_epoch
    return config


def _scalars(metrics: dict[str, np.ndarray], prefix: str) -> dict[str, float]:
    return {f"{prefix}/{k}": float(np.mean(v)) for k, v in metrics.items() if np.ndim(v) <= 1 and
            (prefix == "train" or np.ndim(v) == 0)}


def _check_finite(metrics: dict[str, np.ndarray], first_step: int, checkpointer) -> None:
    for name, values in metrics.items():
        values = np.asarray(values)
        bad = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
        if bad.any():
            step = first_step + int(np.argmax(bad)) + 1
            checkpointer.wait()
            raise NonFiniteLossError(
                f"train/{name} is {values[np.argmax(bad)]} at step {step}; training stopped and the "
                f"last good checkpoint (step {checkpointer.latest_step()}) is intact. "
                "Lower config.learning_rate or set config.grad_clip_norm.")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Train `config` in `workdir`, resuming from its latest checkpoint; return final eval."""
    validate(config)
    os.makedirs(workdir, exist_ok=True)
    variant = registry.get(config.model)

    # ---- input: whole splits on the device, once.
    train_split = pipeline.load_split(config, "train")
    test_split = pipeline.load_split(config, "test")
    config = prepare_config(config, train_split)
    total_steps = config.num_train_steps
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(config.to_dict(), f, indent=2)
    train_data, test_data = pipeline.put_on_device(train_split), pipeline.put_on_device(test_split)
    logging.info("%s: %d train / %d test images of shape %s; %d steps of batch %d",
                 config.dataset, train_split.num_examples, test_split.num_examples,
                 train_split.image_shape, total_steps, config.batch_size)

    # ---- model, optimiser, state (restored if the workdir has a checkpoint).
    model = variant.build_model(config, config.image_shape)
    optimizer = _make_optimizer(variant, config, total_steps)
    state = create_train_state(config, variant, model, optimizer, jax.random.PRNGKey(config.seed))
    checkpointer = checkpoint.Checkpointer(workdir, max_to_keep=config.keep_checkpoints)
    writer = writers.MetricWriter(workdir)
    if checkpointer.latest_step() is not None:
        state = checkpointer.restore(state, config.to_dict())
        logging.info("resumed from the checkpoint at step %d", int(state.step))
    writer.truncate_after(int(state.step))
    num_params = sum(x.size for x in jax.tree_util.tree_leaves(state.params))
    logging.info("model %r: %d parameters", config.model, num_params)

    # ---- compiled functions.
    train_step = make_train_step(make_update(variant, model, config, optimizer, total_steps))
    train_chunk = make_train_chunk(train_step, config, train_split.num_examples)
    evaluate = make_evaluate((variant.make_eval_loss or variant.make_loss)(model, config), config)
    chunk = math.gcd(config.log_every_steps, config.eval_every_steps, config.checkpoint_every_steps)

    # ---- loop.
    step = int(state.step)
    progress = Progress(total_steps, step, config.batch_size)
    start, first_step_time, eval_metrics = time.perf_counter(), None, {}
    train_seconds, timed_steps = 0.0, 0  # time inside training chunks only
    train_metrics: list[dict[str, np.ndarray]] = []
    while step < total_steps:
        num_steps = min(chunk, total_steps - step)
        chunk_start = time.perf_counter()
        state, metrics = train_chunk(state, train_data.images, train_data.labels, num_steps)
        metrics = jax.device_get(metrics)
        if first_step_time is not None:  # steady state: compile excluded
            train_seconds += time.perf_counter() - chunk_start
            timed_steps += num_steps
        _check_finite(metrics, step, checkpointer)
        step += num_steps
        if first_step_time is None:
            first_step_time = time.perf_counter() - start
            logging.info("first chunk of %d steps finished %.1fs after start (compile included)",
                         num_steps, first_step_time)
            progress.start(step)
        train_metrics.append(metrics)
        progress.update(step, f"loss {float(np.mean(metrics['loss'])):.2f}")
        done = step == total_steps
        if step % config.log_every_steps == 0 or done:
            merged = {k: np.concatenate([m[k] for m in train_metrics]) for k in train_metrics[0]}
            rates = {} if not timed_steps else {
                "train/steps_per_sec": timed_steps / train_seconds,
                "train/examples_per_sec": timed_steps * config.batch_size / train_seconds}
            writer.write(step, {**_scalars(merged, "train"), **rates})
            train_metrics = []
        if step % config.eval_every_steps == 0 or done:
            eval_metrics = evaluate(state.params, test_data, state.rng, state.step)
            writer.write(step, {f"eval/{k}": v for k, v in eval_metrics.items()})
            trained = TrainedModel(config, state.params, step)
            save_figures(workdir, step, trained, test_data.images,
                         jax.random.fold_in(state.rng, EVAL_STREAM), writer)
            logging.info("step %d eval: %s", step, ", ".join(
                f"{k} {float(v):.3f}" for k, v in eval_metrics.items() if np.ndim(v) == 0))
        if step % config.checkpoint_every_steps == 0 or done:
            checkpointer.save(step, state, config.to_dict())
    progress.close()
    checkpointer.close()
    writer.close()
    elapsed = time.perf_counter() - start
    logging.info("finished %d steps in %s", total_steps, format_seconds(elapsed))
    return {k: np.asarray(v) for k, v in eval_metrics.items()}
