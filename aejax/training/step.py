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


class Evaluate:
    """(params, split, rng, step) → metrics averaged over every example of `split` (see `make_evaluate`).

    `compile(params, split, rng, step)` compiles the programs a call with such
    arguments runs, without running them: called from a background thread at the
    start of training, evaluation is ready when it is first needed.
    """

    def __init__(self, eval_loss_fn, config):
        binarize, batch_size = config.binarize, config.eval_batch_size

        @jax.jit
        def evaluate_batches(params, images, labels, key, step):
            def body(_, inputs):
                batch_images, batch_labels, index = inputs
                data_key, loss_key = jax.random.split(jax.random.fold_in(key, index))
                batch = {"image": batches.preprocess(batch_images, data_key, binarize),
                         "label": batch_labels}
                return None, eval_loss_fn(params, batch, loss_key, step)[1]
            return jax.lax.scan(body, None, (images, labels, jnp.arange(images.shape[0])))[1]

        self._evaluate_batches, self._batch_size, self._layout = evaluate_batches, batch_size, None

    def _parts(self, split: Split, rng) -> list[tuple]:
        """[(images [batches, batch, ...], labels, key)]: the full batches, then the remainder if any.

        The layout is cut on the host once per split (no compiled slicing); the keys per call.
        """
        if self._layout is None or self._layout[0] is not split:
            self._layout = (split, _batch_layout(split, min(self._batch_size, split.num_examples)))
        key = jax.random.fold_in(rng, EVAL_STREAM)
        return [(images, labels, key if first == 0 else jax.random.fold_in(key, first))
                for images, labels, first in self._layout[1]]

    def __call__(self, params, split: Split, rng, step) -> dict[str, np.ndarray]:
        totals, count = None, 0
        for images, labels, part_key in self._parts(split, rng):
            metrics = jax.device_get(self._evaluate_batches(params, images, labels, part_key, step))
            weight = images.shape[1]
            summed = {k: np.sum(v, axis=0) * weight for k, v in metrics.items()}
            totals = summed if totals is None else {k: totals[k] + summed[k] for k in totals}
            count += weight * images.shape[0]
        return {k: v / count for k, v in totals.items()}

    def compile(self, params, split: Split, rng, step) -> None:
        for images, labels, part_key in self._parts(split, rng):
            self._evaluate_batches.lower(params, images, labels, part_key, step).compile()


def _batch_layout(split: Split, size: int) -> list[tuple]:
    """(images, labels, index of the first batch) of the full batches and of the remainder, where `split` lives."""
    images, labels = np.asarray(split.images), np.asarray(split.labels)
    sharding = getattr(split.images, "sharding", None)
    place = (lambda x: jax.device_put(x, sharding)) if sharding is not None else (lambda x: x)
    num_full = len(images) // size
    full = num_full * size
    parts = [(place(images[:full].reshape(num_full, size, *images.shape[1:])),
              place(labels[:full].reshape(num_full, size)), 0)]
    if full < len(images):
        parts.append((place(images[None, full:]), place(labels[None, full:]), num_full))
    return parts


def make_evaluate(eval_loss_fn, config) -> Evaluate:
    """(params, split, rng, step) → metrics averaged over every test example.

    Full batches run as one scan; a remainder batch (if any) runs as a second
    compiled shape. Noise (dynamic binarisation, z samples) uses a key that
    depends only on the batch index, so evals at different steps compare.
    """
    return Evaluate(eval_loss_fn, config)
