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


def eval_pass(eval_loss_fn, binarize: str):
    """(params, images [n, b, ...], labels [n, b], key, step) → metrics of each of the n batches.

    The compiled core of the evaluation: one scan over batches. The noise of batch i
    (dynamic binarisation, z samples) uses fold_in(key, i), which depends only on
    the batch index, so evals at different steps compare.
    """

    def evaluate_batches(params, images, labels, key, step):
        def body(_, inputs):
            batch_images, batch_labels, index = inputs
            data_key, loss_key = jax.random.split(jax.random.fold_in(key, index))
            batch = {"image": batches.preprocess_eval(batch_images, data_key, binarize), "label": batch_labels}
            return None, eval_loss_fn(params, batch, loss_key, step)[1]
        return jax.lax.scan(body, None, (images, labels, jnp.arange(images.shape[0])))[1]

    return evaluate_batches


def eval_parts(split: Split, batch_size: int) -> list[tuple]:
    """[(images [batches, batch, ...], labels, index of the first batch)]: the full batches, then the remainder
    if any, cut on the host (no compiled slicing) and put where `split` lives."""
    size = min(batch_size, split.num_examples)
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


def eval_key(rng, first: int):
    """The key of the eval part whose first batch is `first`: from the run's key, never one a step uses."""
    key = jax.random.fold_in(rng, EVAL_STREAM)
    return key if first == 0 else jax.random.fold_in(key, first)


def mean_over_parts(results: list[dict], parts: list[tuple], batch_axis: int = 0) -> dict[str, np.ndarray]:
    """Per-example means from the per-batch metrics of each part (batches along `batch_axis`)."""
    totals, count = None, 0
    for metrics, (images, _, _) in zip(results, parts):
        weight = images.shape[1]
        summed = {k: np.sum(v, axis=batch_axis) * weight for k, v in metrics.items()}
        totals = summed if totals is None else {k: totals[k] + summed[k] for k in totals}
        count += weight * images.shape[0]
    return {k: v / count for k, v in totals.items()}


class Evaluate:
    """(params, split, rng, step) → metrics averaged over every example of `split` (see `make_evaluate`).

    `compile(params, split, rng, step)` compiles the programs a call with such
    arguments runs, without running them: called from a background thread at the
    start of training, evaluation is ready when it is first needed.
    """

    def __init__(self, eval_loss_fn, config):
        self._evaluate_batches = jax.jit(eval_pass(eval_loss_fn, config.binarize))
        self._batch_size, self._layout = config.eval_batch_size, None

    def _parts(self, split: Split) -> list[tuple]:
        if self._layout is None or self._layout[0] is not split:  # cut once per split
            self._layout = (split, eval_parts(split, self._batch_size))
        return self._layout[1]

    def __call__(self, params, split: Split, rng, step) -> dict[str, np.ndarray]:
        parts = self._parts(split)
        results = [jax.device_get(self._evaluate_batches(params, images, labels, eval_key(rng, first), step))
                   for images, labels, first in parts]
        return mean_over_parts(results, parts)

    def compile(self, params, split: Split, rng, step) -> None:
        """Compiles without running; `params`, `rng` and `step` may be shapes (jax.ShapeDtypeStruct)."""
        key = jax.ShapeDtypeStruct(rng.shape, rng.dtype, sharding=getattr(rng, "sharding", None))  # eval_key's
        for images, labels, _ in self._parts(split):
            self._evaluate_batches.lower(params, images, labels, key, step).compile()


def make_evaluate(eval_loss_fn, config) -> Evaluate:
    """(params, split, rng, step) → metrics averaged over every test example.

    Full batches run as one scan; a remainder batch (if any) runs as a second
    compiled shape. Noise (dynamic binarisation, z samples) uses a key that
    depends only on the batch index, so evals at different steps compare.
    """
    return Evaluate(eval_loss_fn, config)
