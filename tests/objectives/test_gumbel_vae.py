"""Gumbel-softmax VAE (Jang et al. 2017): KL, relaxed samples and the temperature schedule against numpy."""
import math

import jax
import jax.numpy as jnp
import numpy as np

import aejax
from aejax import objectives
from aejax.objectives import gumbel_vae
from aejax.training.loop import train_and_evaluate
from aejax.training.writers import read_metrics


def test_kl_to_uniform_matches_numpy():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(7, 0.5), size=(5, 3))                         # [B, N, K]
    expected = np.sum(p * np.log(p / (1 / 7)), axis=-1)                     # KL(q ‖ U) per variable
    got = gumbel_vae.kl_to_uniform(jnp.log(jnp.asarray(p, jnp.float32)))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-5)
    # Zero at the uniform, log K at a one-hot.
    np.testing.assert_allclose(gumbel_vae.kl_to_uniform(jnp.log(jnp.full((1, 7), 1 / 7))), 0, atol=1e-6)
    one_hot = jnp.log(jnp.asarray([[1 - 6e-7] + [1e-7] * 6]))
    np.testing.assert_allclose(gumbel_vae.kl_to_uniform(one_hot), math.log(7), atol=1e-4)


def test_low_temperature_samples_are_near_one_hot_with_argmax_frequencies_of_the_softmax():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    n = 40_000
    log_probs = jnp.log(jnp.broadcast_to(jnp.asarray(probs, jnp.float32), (n, 4)))
    distance = {}   # mean L1 distance of a sample to the one-hot of its argmax
    for tau in (0.5, 0.1, 0.01):
        y = np.asarray(gumbel_vae.gumbel_softmax(jax.random.PRNGKey(0), log_probs, tau), np.float64)
        np.testing.assert_allclose(y.sum(-1), 1, atol=1e-5)
        distance[tau] = np.mean(np.abs(y - np.eye(4)[y.argmax(-1)]).sum(-1))
    assert distance[0.5] > distance[0.1] > distance[0.01] and distance[0.01] < 0.02, distance
    assert np.mean(y.max(-1) > 0.9) > 0.97
    frequencies = np.bincount(y.argmax(-1), minlength=4) / n
    assert np.all(np.abs(frequencies - probs) < 5 * np.sqrt(probs * (1 - probs) / n)), frequencies
    # At a high temperature the samples are near uniform instead.
    hot = np.asarray(gumbel_vae.gumbel_softmax(jax.random.PRNGKey(1), jnp.log(jnp.asarray(probs, jnp.float32)), 100.0))
    assert hot.max() < 0.3


def test_exact_categorical_samples_follow_the_probabilities():
    probs = np.array([0.1, 0.6, 0.3])
    n = 30_000
    y = np.asarray(gumbel_vae.categorical_sample(jax.random.PRNGKey(2),
                                                 jnp.log(jnp.broadcast_to(jnp.asarray(probs), (n, 3)))))
    assert set(np.unique(y)) <= {0.0, 1.0} and np.all(y.sum(-1) == 1)
    assert np.all(np.abs(y.mean(0) - probs) < 5 * np.sqrt(probs * (1 - probs) / n))


def test_temperature_schedule_against_hand_values():
    config = type("C", (), {"gumbel_temperature": 2.0, "gumbel_min_temperature": 0.5, "gumbel_anneal_rate": 1e-3})()
    for step, expected in [(0, 2.0), (100, 2.0 * math.exp(-0.1)), (1000, 2.0 * math.exp(-1.0)),
                           (1386, max(0.5, 2.0 * math.exp(-1.386))), (5000, 0.5)]:
        np.testing.assert_allclose(float(gumbel_vae.temperature(config, step)), expected, rtol=1e-5)
    # Jit-able with traced numbers (population sweeps vary them).
    traced = jax.jit(lambda t0, r, step: gumbel_vae.temperature(
        type("C", (), {"gumbel_temperature": t0, "gumbel_min_temperature": 0.5, "gumbel_anneal_rate": r})(), step))
    np.testing.assert_allclose(float(traced(1.0, 1e-4, 1000)), math.exp(-0.1), rtol=1e-5)


def test_losses_are_reconstruction_plus_kl_with_relaxed_and_exact_codes(built):
    config, model, params = built("gumbel_vae", beta=0.7)
    x = jnp.asarray((np.random.default_rng(0).random((5, 8, 8, 1)) < 0.5), jnp.float32)
    key = jax.random.PRNGKey(3)
    loss, metrics = objectives.get("gumbel_vae").make_loss(model, config)(params, {"image": x}, key, 10)
    log_q = np.asarray(model.apply(params, x, method="logits"), np.float64)
    q = np.exp(log_q)
    kl = np.sum(q * (log_q + np.log(config.num_categories)), axis=(1, 2))
    np.testing.assert_allclose(float(metrics["kl"]), kl.mean(), rtol=1e-4)
    np.testing.assert_allclose(float(loss), float(metrics["reconstruction"]) + 0.7 * kl.mean(), rtol=1e-5)
    _, eval_metrics = objectives.get("gumbel_vae").make_eval_loss(model, config)(params, {"image": x}, key, 10)
    # The exact-sample ELBO: decode the Gumbel-max one-hot of the same key by hand.
    g = np.asarray(jax.random.gumbel(key, log_q.shape), np.float64)
    codes = np.eye(config.num_categories)[np.argmax(log_q + g, -1)].reshape(5, -1)
    logits = np.asarray(model.apply(params, jnp.asarray(codes, jnp.float32), method="decode"), np.float64)
    xf = np.asarray(x, np.float64)
    log_px = np.sum((xf * -np.logaddexp(0, -logits) + (1 - xf) * -np.logaddexp(0, logits)).reshape(5, -1), -1)
    np.testing.assert_allclose(float(eval_metrics["elbo"]), np.mean(log_px - kl), rtol=1e-4)


def test_gumbel_vae_trains_and_samples_one_hot_codes(tmp_path):
    import experiments.gumbel_vae as experiment
    config = experiment.get_config("smoke")
    final = train_and_evaluate(config, str(tmp_path))
    records = [r for r in read_metrics(str(tmp_path)) if "train/loss" in r]
    assert records[-1]["train/loss"] < records[0]["train/loss"]
    assert records[-1]["train/temperature"] < records[0]["train/temperature"]
    assert np.isfinite(final["elbo"])
    codes = np.asarray(gumbel_vae.sample_prior(config, jax.random.PRNGKey(0), 6)).reshape(6, 4, 3)
    assert np.all(codes.sum(-1) == 1) and set(np.unique(codes)) == {0.0, 1.0}
    model = aejax.load(str(tmp_path))
    assert model.sample(jax.random.PRNGKey(0), 5).shape == (5, 8, 8, 1)
    assert model.code(np.zeros((2, 8, 8, 1), np.uint8)).shape == (2, 12)
