"""keras_adam: Adam as Keras 2 / TensorFlow 1 step it (ε on √v before the bias correction), for Keras-era protocols."""
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from aejax.core import optim


def _keras_2_2_4_adam(params, grads_per_step, lr, b1=0.9, b2=0.999, eps=1e-7):
    """Keras 2.2.4's `Adam.get_updates`, written out in numpy (float64)."""
    p, m, v = params.astype(np.float64), np.zeros_like(params, np.float64), np.zeros_like(params, np.float64)
    for t, g in enumerate(grads_per_step, start=1):
        lr_t = lr * np.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
        m = b1 * m + (1.0 - b1) * g
        v = b2 * v + (1.0 - b2) * g * g
        p = p - lr_t * m / (np.sqrt(v) + eps)
    return p


def _optimize(optimizer, params, grads_per_step):
    state = optimizer.init(jnp.asarray(params))
    p = jnp.asarray(params)
    for g in grads_per_step:
        updates, state = optimizer.update(jnp.asarray(g, jnp.float32), state, p)
        p = optax.apply_updates(p, updates)
    return np.asarray(p)


def test_keras_adam_steps_as_keras_does_where_epsilon_matters():
    rng = np.random.default_rng(0)
    params = np.zeros(64, np.float32)  # the steps themselves, not float32's rounding of 1 + step
    # Gradients from 1e-9 to 1e-3: for the small ones ε = 1e-7 dominates √v, for the large ones it does not.
    scale = np.logspace(-9, -3, 64)
    grads = [scale * rng.normal(size=64) for _ in range(25)]
    config = ml_collections.ConfigDict({"optimizer": "keras_adam", "learning_rate": 1e-3, "lr_schedule": "constant",
                                        "warmup_steps": 0, "grad_clip_norm": 0.0, "keras_adam_epsilon": 1e-7})
    keras = _keras_2_2_4_adam(params, grads, lr=1e-3)
    ours = _optimize(optim.make_optimizer(config, total_steps=25), params, grads)
    np.testing.assert_allclose(ours - params, keras - params, rtol=2e-4, atol=1e-9)
    # optax's Adam (ε after the bias correction, 1e-8) moves the tiny-gradient parameters ~lr a step: not Keras's.
    adam = _optimize(optax.adam(1e-3), params, grads)
    small = scale < 1e-8
    assert np.all(np.abs(adam - params)[small] > 10 * np.abs(keras - params)[small])
    np.testing.assert_allclose((adam - params)[scale > 1e-4], (keras - params)[scale > 1e-4], rtol=0.1)


def test_keras_adam_is_invariant_to_the_loss_scale_with_epsilon_scaled_alike():
    """N2D's loss is ½Σ over 784 pixels, Keras's MSE a mean: gradients 392× larger, so ε = 392 · 1e-7."""
    rng = np.random.default_rng(1)
    params = np.zeros(32, np.float32)
    grads = [np.logspace(-9, -3, 32) * rng.normal(size=32) for _ in range(10)]
    unscaled = _optimize(optax.chain(optim.scale_by_keras_adam(eps=1e-7), optax.scale_by_learning_rate(1e-3)),
                         params, grads)
    scaled = _optimize(optax.chain(optim.scale_by_keras_adam(eps=392 * 1e-7), optax.scale_by_learning_rate(1e-3)),
                       params, [392 * g for g in grads])
    np.testing.assert_allclose(scaled - params, unscaled - params, rtol=1e-4, atol=1e-10)
