"""Two-layer VAE: its log-weights against scipy densities at given samples; IW ≥ ELBO; it trains and samples."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import norm

import aejax
from aejax.core.errors import ConfigError
from aejax.evaluation.evaluate_run import EvalOptions, evaluate_run
from aejax.evaluation.likelihood import likelihood_estimates
from aejax.objectives import hvae
from aejax.training.config import validate
from aejax.training.loop import train_and_evaluate
from aejax.training.writers import read_metrics


def _normal(values, mean_logvar):
    mean, logvar = (np.asarray(a, np.float64) for a in mean_logvar)
    return norm.logpdf(values, mean, np.exp(0.5 * logvar)).sum(-1)


def test_log_weights_match_scipy_densities_at_given_samples(built):
    config, model, params = built("hvae")
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(size=(3, 8, 8, 1)) > 0.5, jnp.float32)
    z1, z2 = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 2))   # K = 2 samples, B = 3
    log_w, log_px_z1, _ = hvae.log_weights_given(model, config, params, x, jnp.asarray(z1, jnp.float32),
                                                 jnp.asarray(z2, jnp.float32))
    apply = lambda method, inputs: model.apply(params, jnp.asarray(inputs, jnp.float32), method=method)  # noqa: E731
    flat1, flat2 = z1.reshape(6, 4), z2.reshape(6, 2)
    p = expit(np.asarray(apply("decode", flat1), np.float64).reshape(2, 3, -1))
    xs = np.asarray(x, np.float64).reshape(3, -1)
    expected_px = np.sum(xs * np.log(p) + (1 - xs) * np.log1p(-p), -1)
    log_p = (expected_px + _normal(flat1, apply("prior_middle", flat2)).reshape(2, 3)
             + norm.logpdf(z2).sum(-1))
    log_q = _normal(z1, apply("encode", x)) + _normal(flat2, apply("infer_top", flat1)).reshape(2, 3)
    np.testing.assert_allclose(np.asarray(log_px_z1), expected_px, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.asarray(log_w), log_p - log_q, rtol=1e-4, atol=2e-3)


def test_iw_estimate_is_above_the_elbo_and_rises_with_k(built, tmp_path):
    from experiments import hvae as experiment
    train_and_evaluate(experiment.get_config("smoke"), str(tmp_path))
    losses = [r["train/loss"] for r in read_metrics(str(tmp_path)) if "train/loss" in r]
    assert losses[-1] < losses[0], losses
    model = aejax.load(str(tmp_path))
    assert model.sample(jax.random.PRNGKey(0), 5).shape == (5, 8, 8, 1)
    assert model.code(np.zeros((2, 8, 8, 1), np.uint8)).shape == (2, 4)
    x = np.random.default_rng(0).uniform(size=(40, 8, 8, 1)).astype(np.float32)
    estimates = {k: likelihood_estimates(model, x, num_samples=k, samples_per_chunk=16, batch_size=20, seed=0)
                 for k in (1, 64)}
    np.testing.assert_allclose(estimates[1]["log_px"], estimates[1]["elbo"], atol=1e-4)
    many = estimates[64]
    assert np.all(many["log_px"] >= many["elbo"] - 1e-4)
    assert np.mean(many["log_px"]) > np.mean(many["elbo"]) + 0.1
    assert np.mean(many["log_px"]) > np.mean(estimates[1]["log_px"])
    # The evaluation report: the rate is the Monte Carlo KL of both layers (no per-dimension split).
    report = evaluate_run(str(tmp_path), options=EvalOptions(num_importance_samples=8, samples_per_chunk=4,
                                                             clustering=False, num_quality_samples=0))
    metrics = report["metrics"]
    assert metrics["log_px_iw"] >= metrics["elbo"] and "kl" not in report["per_dim"]
    assert metrics["elbo"] == pytest.approx(-(metrics["reconstruction_nll"] + metrics["kl"]), rel=1e-5)


def test_iw_training_bound_and_its_option_check():
    from experiments import hvae as experiment
    config = experiment.get_config("smoke")
    config.iw_train_samples = 0
    with pytest.raises(ConfigError, match="iw_train_samples"):
        validate(config)
