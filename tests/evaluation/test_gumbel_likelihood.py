"""gumbel_vae's importance-weighted log p(x) against brute force over every code of a tiny model.

2 categorical variables × 3 categories: 9 codes c, so
    log p(x) = log Σ_c p(x | c) p(c),  p(c) = 1/9,
exactly; the K-sample estimate with exact one-hot c ~ q(c | x) must approach it within its
Monte Carlo error (computed from the same enumeration), and its mean log-weight the exact ELBO.
"""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from aejax import objectives
from aejax.evaluation.evaluate_run import EvalOptions, evaluate_run
from aejax.evaluation.likelihood import variant_estimates
from aejax.training.loop import train_and_evaluate

SHAPE = (8, 8, 1)
N, K = 2, 3


def every_code():
    """The 9 codes as flattened one-hots [9, N·K], and their classes [9, N]."""
    classes = np.array(list(itertools.product(range(K), repeat=N)))
    return np.eye(K)[classes].reshape(len(classes), -1), classes


def test_iw_log_px_of_exact_categorical_samples_approaches_the_enumerated_marginal(built):
    config, model, params = built("gumbel_vae", num_categorical=N, num_categories=K)
    variant = objectives.get("gumbel_vae")
    x = (np.random.default_rng(0).random((4, *SHAPE)) < 0.4).astype(np.float32)

    # Brute force, in numpy: Bernoulli log p(x | c) of the decoder's logits at each of the 9 codes.
    onehots, classes = every_code()
    logits = np.asarray(model.apply(params, jnp.asarray(onehots, jnp.float32), method="decode"), np.float64)
    logits = logits.reshape(len(onehots), -1)
    xf = x.reshape(len(x), -1).astype(np.float64)
    log_px_c = (xf[:, None] * -np.logaddexp(0, -logits[None]) + (1 - xf[:, None]) * -np.logaddexp(0, logits[None])
                ).sum(-1)                                                          # [B, 9]
    exact = special.logsumexp(log_px_c, axis=1) - np.log(K ** N)
    log_q_rows = np.asarray(model.apply(params, jnp.asarray(x), method="logits"), np.float64)  # [B, N, K]
    log_q = log_q_rows[:, np.arange(N), classes].sum(-1)                                     # [B, 9]: Σ_n log q(c_n|x)
    np.testing.assert_allclose(np.exp(log_q).sum(1), 1, rtol=1e-5)
    log_w = log_px_c - np.log(K ** N) - log_q                                              # [B, 9]
    exact_elbo = np.sum(np.exp(log_q) * log_w, axis=1)

    samples = 20_000
    out = jax.jit(lambda x: variant_estimates(model, variant, config, params, x, jax.random.PRNGKey(3), samples,
                                              2_000))(jnp.asarray(x))
    out = {k: np.asarray(v, np.float64) for k, v in out.items()}
    # Standard error of log (mean w): sd_q(w / p(x)) / √K, from the enumeration.
    relative_sd = np.sqrt(np.sum(np.exp(log_q) * np.square(np.exp(log_w - exact[:, None]) - 1), axis=1) / samples)
    assert np.all(relative_sd < 0.05), relative_sd  # the check below is tight
    assert np.all(np.abs(out["log_px"] - exact) < 4 * relative_sd + 1e-4), (out["log_px"], exact, relative_sd)
    elbo_sd = np.sqrt(np.sum(np.exp(log_q) * np.square(log_w - exact_elbo[:, None]), axis=1) / samples)
    assert np.all(np.abs(out["elbo"] - exact_elbo) < 4 * elbo_sd + 1e-4), (out["elbo"], exact_elbo)
    assert np.all(exact > exact_elbo) and np.all(out["log_px"] > out["elbo"])
    np.testing.assert_allclose(out["kl"], -out["elbo"] - out["reconstruction"], rtol=1e-5)


def test_evaluate_a_gumbel_vae_run_reports_its_log_px(tmp_path):
    import experiments.gumbel_vae as experiment
    train_and_evaluate(experiment.get_config("smoke"), str(tmp_path))
    options = EvalOptions(num_importance_samples=16, samples_per_chunk=8, n2d=False, max_examples=150,
                          num_quality_samples=0, baselines=False, probe=False)
    metrics = evaluate_run(str(tmp_path), options=options)["metrics"]
    assert {"log_px_iw", "elbo", "kl", "active_units", "recon_bce_nats", "kmeans_codes_accuracy"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())
    assert metrics["log_px_iw"] >= metrics["elbo"] and metrics["kl"] >= 0
