"""VQ-VAE maths against independent numpy computations: nearest codes, straight-through, EMA, perplexity."""
import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.core.errors import ConfigError
from aejax.models import vq
from aejax.objectives import vq_vae
from aejax.training.config import validate


def test_quantisation_is_the_brute_force_nearest_neighbour():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 3, 3, 5)).astype(np.float32)
    codebook = rng.normal(size=(11, 5)).astype(np.float32)
    expected = np.empty(z.shape[:-1], np.int64)
    for index in np.ndindex(*z.shape[:-1]):
        expected[index] = np.argmin([np.linalg.norm(z[index] - e) for e in codebook])
    np.testing.assert_array_equal(np.asarray(vq.nearest_code(jnp.asarray(z), jnp.asarray(codebook))), expected)


def test_straight_through_is_z_q_forward_and_the_identity_backward():
    rng = np.random.default_rng(1)
    z_e = jnp.asarray(rng.normal(size=(2, 2, 2, 3)), jnp.float32)
    codebook = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)

    def quantised(z):
        return vq.straight_through(z, jnp.take(codebook, vq.nearest_code(z, codebook), axis=0))

    z_q = codebook[np.asarray(vq.nearest_code(z_e, codebook))]
    np.testing.assert_allclose(np.asarray(quantised(z_e)), np.asarray(z_q), rtol=1e-6)
    jacobian = np.asarray(jax.jacobian(quantised)(z_e)).reshape(z_e.size, z_e.size)
    np.testing.assert_array_equal(jacobian, np.eye(z_e.size))


def test_ema_update_matches_the_formulas_in_numpy():
    rng = np.random.default_rng(2)
    num_codes, dim, decay, eps = 5, 3, 0.9, 1e-3
    cluster_size = rng.uniform(0.5, 2.0, size=num_codes)
    embed_sum = rng.normal(size=(num_codes, dim))
    z_e = rng.normal(size=(4, 2, 2, dim))
    indices = rng.integers(0, num_codes - 1, size=(4, 2, 2))  # the last code is unused
    # numpy, code by code
    n = np.array([np.sum(indices == k) for k in range(num_codes)], np.float64)
    sums = np.array([z_e[indices == k].sum(axis=0) if n[k] else np.zeros(dim) for k in range(num_codes)])
    new_n = decay * cluster_size + (1 - decay) * n
    new_m = decay * embed_sum + (1 - decay) * sums
    total = new_n.sum()
    smoothed = (new_n + eps) / (total + num_codes * eps) * total
    state = {"cluster_size": jnp.asarray(cluster_size, jnp.float32), "embed_sum": jnp.asarray(embed_sum, jnp.float32)}
    new_state, codebook = vq_vae.ema_update(state, jnp.asarray(z_e, jnp.float32), jnp.asarray(indices), decay, eps)
    np.testing.assert_allclose(np.asarray(new_state["cluster_size"]), new_n, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(new_state["embed_sum"]), new_m, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(codebook), new_m / smoothed[:, None], rtol=1e-5, atol=1e-6)


def test_ema_init_reproduces_the_initial_codebook():
    codebook = jnp.asarray(np.random.default_rng(3).normal(size=(4, 2)), jnp.float32)
    state = vq_vae.ema_init(codebook)
    _, same = vq_vae.ema_update(state, jnp.zeros((0, 2)), jnp.zeros((0,), jnp.int32), 0.99, 1e-5)
    # no vectors: N and m both shrink by γ, and m / N̂ with equal N_k is the initial codebook
    np.testing.assert_allclose(np.asarray(same), np.asarray(codebook), rtol=1e-5)


def test_perplexity_and_dead_codes_of_a_known_assignment():
    indices = jnp.asarray([[0, 0, 0], [1, 0, 2]])  # codes 0, 1, 2 used 4, 1, 1 times of 6; codes 3, 4 unused
    counts = vq.code_counts(indices, 5)
    p = [4 / 6, 1 / 6, 1 / 6]
    by_hand = math.exp(-sum(q * math.log(q) for q in p))
    assert float(vq.perplexity(counts)) == pytest.approx(by_hand, rel=1e-6)
    assert float(vq.dead_codes(counts)) == 2
    assert float(vq.perplexity(vq.code_counts(jnp.arange(8), 8))) == pytest.approx(8.0, rel=1e-6)


def _smoke_config(**overrides):
    config = importlib.import_module("experiments.vq_vae").get_config("smoke")
    config.update(overrides)
    config.image_shape = (8, 8, 1)
    return validate(config)


@pytest.mark.parametrize("form", ["ema", "loss"])
def test_one_update_moves_the_codebook_as_its_form_says(form):
    """EMA: the new codebook is numpy's EMA of the old params' assignments; loss: Adam moved it by its gradient."""
    config = _smoke_config(codebook_loss=form)
    variant = vq_vae.VARIANTS[0]
    model = variant.build_model(config, config.image_shape)
    x = jnp.asarray(np.random.default_rng(4).uniform(size=(6, 8, 8, 1)), jnp.float32)
    params = model.init(jax.random.PRNGKey(0), x)
    opt_state = variant.make_optimizer(config, 10).init(params)
    update = variant.make_update(model, config, 10)
    new_params, new_state, metrics = update(params, opt_state, {"image": x}, jax.random.PRNGKey(1), 0)
    assert set(new_state) == ({"optimizer", "ema"} if form == "ema" else {"optimizer"})
    old = np.asarray(vq_vae.codebook_of(params), np.float64)
    new = np.asarray(vq_vae.codebook_of(new_params), np.float64)
    if form == "ema":
        _, z_e, _, indices = model.apply(params, x)
        z_e, indices = np.asarray(z_e, np.float64), np.asarray(indices)
        n = np.array([np.sum(indices == k) for k in range(len(old))])
        sums = np.array([z_e[indices == k].sum(axis=0) for k in range(len(old))])
        cluster = 0.99 + 0.01 * n
        total = cluster.sum()
        smoothed = (cluster + config.ema_epsilon) / (total + len(old) * config.ema_epsilon) * total
        np.testing.assert_allclose(new, (0.99 * old + 0.01 * sums) / smoothed[:, None], rtol=1e-4, atol=1e-6)
    else:
        used = np.unique(np.asarray(model.apply(params, x)[3]))
        moved = np.any(new != old, axis=1)
        assert moved[used].all() and not moved[np.setdiff1d(np.arange(len(old)), used)].any()
    assert np.isfinite(float(metrics["loss"])) and 1 <= float(metrics["perplexity"]) <= config.num_codes


def test_bad_settings_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="architecture='conv'"):
        config = _smoke_config(architecture="mlp")
        vq_vae.VARIANTS[0].build_model(config, (8, 8, 1))
    with pytest.raises(ConfigError, match="codebook_loss"):
        _smoke_config(codebook_loss="kmeans")
    with pytest.raises(ConfigError, match="ema_decay"):
        _smoke_config(ema_decay=1.0)
