"""make_train_chunk: a jitted call per step (config.scan_steps=False) replays the scan's steps."""
import jax
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


def test_looped_chunks_take_the_same_steps_as_one_scan():
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
