"""Optimisation: the optimiser and learning-rate schedule from the config, and the update rule.

`gradient_update` (one gradient of a loss, one optimiser step) lives here, below
both the objectives (an adversarial AE builds each of its phases from it) and
the training loop (the default update of every variant).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from aejax.core.options import Option, non_negative, number, one_of, positive

def scale_by_keras_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-7) -> optax.GradientTransformation:
    """Adam's direction as Keras 2 and TensorFlow 1 compute it: √(1−β₂ᵗ)/(1−β₁ᵗ) · m_t / (√v_t + ε).

    ε is added to √v before the bias correction (optax adds it after), and
    Keras's default is 1e-7. The two agree once ε is negligible against √v;
    they do not for parameters whose gradients are tiny, where Keras's step
    shrinks towards 0 and optax's stays ~lr. For reproducing Keras-era papers
    (N2D, experiments/n2d.py). The state is optax's Adam state (same checkpoints).
    """
    def init(params):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=zeros, nu=zeros)

    def update(updates, state, params=None):
        del params
        count = state.count + 1
        mu = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
        nu = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * jnp.square(g), state.nu, updates)
        t = count.astype(jnp.float32)
        correction = jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        direction = jax.tree_util.tree_map(lambda m, v: correction * m / (jnp.sqrt(v) + eps), mu, nu)
        return direction, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adam": lambda lr, config: optax.adam(lr),
    "keras_adam": lambda lr, config: optax.chain(scale_by_keras_adam(eps=config.keras_adam_epsilon),
                                                 optax.scale_by_learning_rate(lr)),
    "adamw": lambda lr, config: optax.adamw(lr, weight_decay=config.weight_decay),
    "sgd": lambda lr, config: optax.sgd(lr, momentum=config.get("momentum", 0.9) or None),
    "rmsprop": lambda lr, config: optax.rmsprop(lr),
}


def _cosine(config, learning_rate, total_steps):
    return optax.warmup_cosine_decay_schedule(
        0.0, learning_rate, max(config.warmup_steps, 0), max(total_steps, 1))


def _constant(config, learning_rate, total_steps):
    del total_steps
    if config.warmup_steps > 0:
        return optax.linear_schedule(0.0, learning_rate, config.warmup_steps)
    return learning_rate


SCHEDULES = {"constant": _constant, "cosine": _cosine}
# Schedules whose value at a step depends on the run's total number of steps (cosine reaches 0 at
# the last one): changing the length of such a run when resuming changes its learning rates.
LENGTH_DEPENDENT_SCHEDULES = frozenset({"cosine"})

OPTIONS = {
    "optimizer": Option("adam", one_of(OPTIMIZERS), "optax optimiser"),
    "learning_rate": Option(1e-3, positive, "peak learning rate"),
    "lr_schedule": Option("constant", one_of(SCHEDULES), "constant | cosine (to 0 at the last step)"),
    "warmup_steps": Option(0, non_negative, "linear warm-up from 0 over these steps"),
    "grad_clip_norm": Option(0.0, non_negative, "clip the global gradient norm to this (0 = off)"),
    "weight_decay": Option(0.0, non_negative, "decoupled weight decay (adamw only)"),
    "momentum": Option(0.9, number, "momentum (sgd only; 0 = none)"),
    "keras_adam_epsilon": Option(1e-7, positive, "ε of keras_adam, in the units of the loss's gradient (Keras's "
                                                 "default 1e-7 is for its loss: rescale with the loss)"),
}


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int,
                   learning_rate: float | None = None) -> optax.GradientTransformation:
    """Optional gradient clipping, then the named optimiser on the schedule of `learning_rate`
    (default: config.learning_rate)."""
    learning_rate = config.learning_rate if learning_rate is None else learning_rate
    schedule = SCHEDULES[config.lr_schedule](config, learning_rate, total_steps)
    transforms = [OPTIMIZERS[config.optimizer](schedule, config)]
    if config.grad_clip_norm > 0:
        transforms.insert(0, optax.clip_by_global_norm(config.grad_clip_norm))
    return optax.chain(*transforms)


def per_module_optimizer(default: optax.GradientTransformation,
                         by_module: dict[str, optax.GradientTransformation]) -> optax.GradientTransformation:
    """`default` for every parameter, except those under a module named in `by_module`.

    For variants with several players in one params tree (a VAE and its
    discriminator): each gets its own optimiser state and hyper-parameters, while
    the shared train step still applies one `optimizer.update` to one gradient.
    A leaf belongs to the first `by_module` name found on its path.
    """
    if "default" in by_module:
        raise ValueError("'default' is the label of the remaining parameters; name modules otherwise")

    def label(path, _):
        names = [getattr(entry, "key", None) for entry in path]
        return next((name for name in names if name in by_module), "default")

    return optax.multi_transform(
        {"default": default, **by_module},
        lambda params: jax.tree_util.tree_map_with_path(label, params))


def gradient_update(loss_fn, optimizer: optax.GradientTransformation):
    """update(params, opt_state, batch, key, step) -> (params, opt_state, metrics): one gradient of
    `loss_fn`, one optimiser step. The default update of every variant."""

    def update(params, opt_state, batch, key, step):
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (_, metrics), grads = grad_fn(params, batch, key, step)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, metrics

    return update
