"""The pure train step every variant shares, and the evaluation pass.

One step serves every variant: the variant supplies the loss function and
(optionally) its optimiser; the step differentiates, updates and advances the
step counter. A variant whose update is not one gradient of one loss (the
sequential phases of an adversarial AE) supplies its own `update` instead; the
step around it, the keys and the data stay shared. Keys are never stored per
step: the key of step t is fold_in(rng, t), so any step can be replayed exactly
after a resume.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from aejax.core import parallel
from aejax.core.optim import gradient_update
from aejax.core.options import Option, positive_integer
from aejax.data import batches
from aejax.data.splits import Split
from aejax.training.state import TrainState

# Sub-streams of the run's key, so data order, step noise and eval noise never share a key.
PERMUTATION_STREAM, STEP_STREAM, EVAL_STREAM = 0, 1, 2

OPTIONS = {
    "eval_batch_size": Option(1000, positive_integer, "test examples per compiled evaluation batch", resumable=True),
}


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


def make_batch_step(train_step, config, mesh=None):
    """(state, uint8 images, labels) → (state, metrics): one step on one batch.

    Draws the step's data and loss keys from (rng, step), preprocesses the
    batch and applies `train_step`. With a `mesh`, the batch is laid out split
    over its data axis, so XLA partitions the step and all-reduces the grads.
    """
    binarize = config.binarize

    def batch_step(state: TrainState, images, labels):
        if mesh is not None:
            images, labels = parallel.constrain_batch((images, labels), mesh)
        step_stream = jax.random.fold_in(state.rng, STEP_STREAM)
        data_key, loss_key = jax.random.split(jax.random.fold_in(step_stream, state.step))
        batch = {"image": batches.preprocess(images, data_key, binarize), "label": labels}
        return train_step(state, batch, loss_key)

    return batch_step


def permutation_key(rng):
    """The key of the data order (epoch permutations), from the run's key."""
    return jax.random.fold_in(rng, PERMUTATION_STREAM)


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
            batch = {"image": batches.preprocess(batch_images, data_key, binarize),
                     "label": batch_labels}
            return None, eval_loss_fn(params, batch, loss_key, step)[1]
        return jax.lax.scan(body, None, (images, labels, jnp.arange(images.shape[0])))[1]

    def evaluate(params, split: Split, rng, step) -> dict[str, np.ndarray]:
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
