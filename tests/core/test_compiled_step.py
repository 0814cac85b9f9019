"""What XLA:CPU makes of the training step: no per-pixel pass over image-shaped arrays, each random block drawn
once, no weight copied each step.

All are pure speed (the same numbers, up to the order of additions) and all were measured
(`aejax.core.distributions.flat_pixels`, `aejax.data.batches.stored_apart`, `aejax.core.cpu_tuning`): XLA:CPU
vectorises a fused loop along its minor axis, which is 1 for [B, 28, 28, 1] images, it fuses the threefry draw
into every loop that reads its bits, redrawing each block once per word, and its default copy insertion copies
the weights the backward pass reads. These tests read the compiled program of the canonical VAE's chunk at a
small batch, and of a vmapped draw.
"""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax import objectives
from aejax.core import optim
from aejax.core.optim import gradient_update
from aejax.data.batches import bernoulli_pixels
from aejax.training.chunks import make_train_chunk
from aejax.training.state import create_train_state
from aejax.training.step import make_train_step
from experiments import vae

BATCH, IMAGE = 16, (28, 28, 1)
PIXELS = int(np.prod(IMAGE))


def _lowered_chunk():
    """The canonical VAE's chunk at batch 16 (3 steps from 64 images), lowered; and a state to call it with."""
    config = vae.get_config()
    config.batch_size, config.image_shape = BATCH, IMAGE
    variant = objectives.get(config.model)
    model = variant.build_model(config, IMAGE)
    optimizer = optim.make_optimizer(config, 100)
    train_step = make_train_step(gradient_update(variant.make_loss(model, config), optimizer))
    state = create_train_state(config, variant, model, optimizer, jax.random.PRNGKey(0))
    chunk = make_train_chunk(train_step, config)
    images = jax.ShapeDtypeStruct((64, *IMAGE), jnp.uint8)
    labels = jax.ShapeDtypeStruct((64,), jnp.int32)
    indices = jax.ShapeDtypeStruct((3, BATCH), jnp.int32)
    return chunk.lower(state, images, labels, indices), state


@pytest.fixture(scope="module")
def compiled_chunk():
    return _lowered_chunk()[0].compile().as_text()


def _loop_fusions(hlo: str):
    """(name, dims) of every loop fusion's result array."""
    for match in re.finditer(r"(%[\w.-]+) = \w+\[([\d,]*)\]\{[\d,]*\} fusion\([^\n]*kind=kLoop", hlo):
        yield match.group(1), [int(d) for d in match.group(2).split(",") if d]


def test_no_per_pixel_loop_runs_over_an_image_shaped_array(compiled_chunk):
    fusions = list(_loop_fusions(compiled_chunk))
    per_pixel = [(name, dims) for name, dims in fusions if np.prod(dims) >= BATCH * PIXELS]
    assert per_pixel, "the program's per-pixel loops were not found: the parsing is stale"
    image_shaped = [(name, dims) for name, dims in per_pixel if dims[-1] == 1]
    assert not image_shaped, f"per-pixel loops whose minor axis is 1 (scalar code on XLA:CPU): {image_shaped}"


def _drawing_roots(hlo: str, block_shape: str) -> list[str]:
    """The ROOT line of every computation that runs the threefry rounds over blocks of `block_shape`."""
    computations = re.split(r"\n(?=%\S+ \()", hlo)
    drawing = [c for c in computations if c.count("shift-left") >= 20 and block_shape in c]
    return [next(line for line in c.splitlines() if "ROOT" in line) for c in drawing]


def test_each_threefry_block_of_the_binarisation_is_drawn_once(compiled_chunk):
    """Every fusion that runs the threefry rounds over the [B, D/2] blocks stores both words of each block
    (its root is their concatenation), rather than being a per-pixel loop that keeps one word of each block it
    draws. (The draw sits in both branches of a conditional, so two such fusions exist; one runs.)"""
    roots = _drawing_roots(compiled_chunk, f"u32[{BATCH},{PIXELS // 2}]")
    assert roots, "no fusion runs the binarisation's threefry rounds: the parsing is stale"
    for root in roots:
        assert "concatenate(" in root, f"a per-pixel loop redraws the blocks: {root.strip()[:120]}"


def test_a_vectorised_population_keeps_the_draw_apart_and_each_member_its_own_bits():
    """Under vmap (members' keys batched) the conditional stays a conditional, not a select of both branches
    (`stored_apart`'s batching rule), and every member draws exactly what it draws alone."""
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    images = jax.random.randint(jax.random.PRNGKey(1), (BATCH, *IMAGE), 0, 256).astype(jnp.uint8)
    population = jax.jit(jax.vmap(lambda key: bernoulli_pixels(key, images)))
    hlo = population.lower(keys).compile().as_text()
    assert " conditional(" in hlo
    roots = _drawing_roots(hlo, f"u32[3,{BATCH},{PIXELS // 2}]")
    assert roots and all("concatenate(" in root for root in roots), roots
    alone = np.stack([np.asarray(bernoulli_pixels(key, images)) for key in keys])
    np.testing.assert_array_equal(np.asarray(population(keys)), alone)
    assert not np.array_equal(alone[0], alone[1])  # the members' bits differ


def _loop_body(hlo: str) -> str:
    """The text of the body computation of the program's (one) while loop: the chunk's step."""
    bodies = re.findall(r" while\([^\n]*body=(%[\w.-]+)", hlo)
    assert len(bodies) == 1, f"expected the chunk's one loop, found bodies {bodies}: the parsing is stale"
    return re.search(rf"\n{re.escape(bodies[0])} \(.*?\n}}", hlo, re.S).group(0)


def test_the_step_copies_no_weight_and_computes_the_same_bits_as_with_the_copies(compiled_chunk):
    """With `--xla_cpu_copy_insertion_use_region_analysis` (cpu_tuning) the loop body copies no array; XLA's default
    copy insertion copies each weight the backward pass reads (checked: the same program compiled without the flag
    copies the 400×784 decoder weight, three small kernels and two biases). The two programs give bit-equal states."""
    body = _loop_body(compiled_chunk)
    assert "fusion(" in body and "while/body" in body  # the step's kernels are there
    assert " copy(" not in body, [line.strip()[:80] for line in body.splitlines() if " copy(" in line]
    lowered, state = _lowered_chunk()
    default_copies = lowered.compile(compiler_options={"xla_cpu_copy_insertion_use_region_analysis": False})
    copied = [line for line in _loop_body(default_copies.as_text()).splitlines() if " copy(" in line]
    assert any("f32[400,784]" in line for line in copied), copied  # what the flag removes is still there without it
    images = jax.random.randint(jax.random.PRNGKey(1), (64, *IMAGE), 0, 256).astype(jnp.uint8)
    labels = jnp.zeros(64, jnp.int32)
    indices = np.arange(3 * BATCH, dtype=np.int32).reshape(3, BATCH)
    copy = lambda tree: jax.tree_util.tree_map(jnp.copy, tree)  # noqa: E731  (the chunk donates its state)
    ours = lowered.compile()(copy(state), images, labels, indices, np.int32(3))
    theirs = default_copies(copy(state), images, labels, indices, np.int32(3))
    for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(theirs)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
