"""make_train_chunk: one program for every chunk length; a jitted call per step (config.scan_steps=False)
replays the same steps."""
import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np

from aejax import objectives
from aejax.core import optim
from aejax.core.optim import gradient_update
from aejax.data.batches import EpochOrders
from aejax.training.chunks import make_train_chunk
from aejax.training.state import create_train_state
from aejax.training.step import make_train_step
from experiments import vae


def _smoke_setup():
    config = vae.get_config("smoke")
    config.image_shape = (8, 8, 1)
    variant = objectives.get(config.model)
    model = variant.build_model(config, config.image_shape)
    optimizer = optim.make_optimizer(config, 100)
    train_step = make_train_step(gradient_update(variant.make_loss(model, config), optimizer))
    images = jax.random.randint(jax.random.PRNGKey(1), (50, 8, 8, 1), 0, 256).astype(jnp.uint8)
    labels = jnp.zeros(50, jnp.int32)

    def fresh_state():
        return create_train_state(config, variant, model, optimizer, jax.random.PRNGKey(0))

    return config, train_step, images, labels, fresh_state


def test_looped_chunks_take_the_same_steps_as_one_scan():
    config, train_step, images, labels, fresh_state = _smoke_setup()

    def run(scan_steps, chunks):
        config.scan_steps = scan_steps
        chunk = make_train_chunk(train_step, config)
        orders = EpochOrders(jax.random.PRNGKey(3), 50, config.batch_size)
        state, losses = fresh_state(), []
        for num_steps in chunks:  # 7 steps of batch 32 span two epochs of 50 examples
            state, metrics = chunk(state, images, labels, orders.indices(int(state.step), num_steps))
            losses.append(np.asarray(metrics["loss"]))
        return state, np.concatenate(losses)

    scanned, scan_losses = run(True, [7])
    looped, loop_losses = run(False, [3, 4])
    assert int(looped.step) == 7 and len(loop_losses) == 7
    np.testing.assert_allclose(loop_losses, scan_losses, rtol=1e-5)  # same batches and keys, step by step
    for a, b in zip(jax.tree_util.tree_leaves(looped.params), jax.tree_util.tree_leaves(scanned.params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # The comparison can fail: consecutive steps (other batches) have other losses.
    assert not np.allclose(loop_losses[1:], scan_losses[:-1], rtol=1e-3)


def test_one_program_runs_every_shorter_chunk_with_the_same_steps():
    """A run's last, shorter chunk reuses the program of its full chunks (indices padded, the loop stops at the
    chunk's length): the same states and per-step metrics, bit for bit, as each length compiled on its own."""
    config, train_step, images, labels, fresh_state = _smoke_setup()
    config.scan_steps = True

    def run(chunks):
        chunk = make_train_chunk(train_step, config)
        orders = EpochOrders(jax.random.PRNGKey(3), 50, config.batch_size)
        state, losses, counts = fresh_state(), [], []
        for num_steps in chunks:
            state, metrics = chunk(state, images, labels, orders.indices(int(state.step), num_steps))
            losses.append(np.asarray(metrics["loss"]))
            counts.append(len(losses[-1]))
        return state, np.concatenate(losses), counts, chunk.capacity

    compiles = []

    def count(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        padded, padded_losses, counts, capacity = run([5, 2])
    finally:
        jax.monitoring.unregister_event_duration_listener(count)
    assert compiles.count("jit(train_chunk)") == 1 and capacity == 5 and counts == [5, 2]
    # Each length on its own (a fresh chunk whose first call sets its length): the reference.
    exact_state, exact_losses = fresh_state(), []
    orders = EpochOrders(jax.random.PRNGKey(3), 50, config.batch_size)
    for first, num_steps in [(0, 5), (5, 2)]:
        exact_state, metrics = make_train_chunk(train_step, config)(
            exact_state, images, labels, orders.indices(first, num_steps))
        exact_losses.append(np.asarray(metrics["loss"]))
    assert int(padded.step) == 7  # the padding rows ran no step
    np.testing.assert_array_equal(padded_losses, np.concatenate(exact_losses))
    for a, b in zip(jax.tree_util.tree_leaves(padded), jax.tree_util.tree_leaves(exact_state)):
        np.testing.assert_array_equal(a, b)
    one_chunk, one_chunk_losses, _, _ = run([7])
    np.testing.assert_array_equal(padded_losses, one_chunk_losses)
