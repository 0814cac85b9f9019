"""Evaluating a conditional VAE (cvae): log p(x | y) by importance sampling against numpy, and the full report.

    log p(x | y) ≈ log (1/K) Σ_k p(x | z_k, y) N(z_k; 0, I) / N(z_k; μ(x, y), σ²(x, y)),   z_k ~ q(z | x, y)
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from aejax import objectives
from aejax.evaluation.evaluate_run import EvalOptions, evaluate_run, format_table
from aejax.evaluation.likelihood import likelihood_estimates, variant_estimates
from aejax.training.loop import train_and_evaluate
from tests.numpy_reference import dense_layers, numpy_mlp

SHAPE = (8, 8, 1)
K, CHUNK = 12, 5  # the last chunk overhangs: 3 chunks, 15 draws, 12 used


def numpy_encoder(p, x, onehot):
    h = numpy_mlp(dense_layers(p["encoder"]["trunk"]["MLP_0"]), np.concatenate([x.reshape(len(x), -1), onehot], 1),
                  True)
    dense = lambda name: h @ np.asarray(p["encoder"][name]["kernel"]) + np.asarray(p["encoder"][name]["bias"])  # noqa: E731
    return dense("mean"), dense("logvar")


def numpy_log_px_given_zy(p, z, onehot, x):
    """Bernoulli log p(x | z, y), the decoder on [z, onehot y]; z [S, B, latent] -> [S, B]."""
    logits = numpy_mlp(dense_layers(p["decoder"]["MLP_0"]),
                       np.concatenate([z, np.broadcast_to(onehot, (*z.shape[:2], onehot.shape[1]))], -1), False)
    xf = x.reshape(len(x), -1).astype(np.float64)
    return np.sum(xf * -np.logaddexp(0, -logits) + (1 - xf) * -np.logaddexp(0, logits), axis=-1)


def test_conditional_iw_log_likelihood_matches_scipy_at_the_same_samples_and_bounds_the_elbo(built):
    config, model, params = built("cvae")
    variant = objectives.get("cvae")
    rng = np.random.default_rng(0)
    x = (rng.random((6, *SHAPE)) < 0.4).astype(np.float32)
    labels = np.array([0, 3, 9, 3, 1, 7], np.int32)
    key = jax.random.PRNGKey(4)
    out = jax.jit(lambda x, y: variant_estimates(model, variant, config, params, x, key, K, CHUNK, y))(
        jnp.asarray(x), jnp.asarray(labels))
    out = {k: np.asarray(v, np.float64) for k, v in out.items()}

    # numpy/scipy: q(z | x, y) and p(x | z, y) from the weights; the same ε (chunk c: fold_in(key, c)).
    p, onehot = params["params"], np.eye(10)[labels]
    mean, logvar = numpy_encoder(p, x, onehot)
    eps = np.concatenate([np.asarray(jax.random.normal(jax.random.fold_in(key, c), (CHUNK, *mean.shape)), np.float64)
                          for c in range(3)])[:K]
    std = np.exp(0.5 * logvar)
    z = mean + std * eps                                                              # [K, B, latent]
    log_px_z = numpy_log_px_given_zy(p, z, onehot, x)
    log_w = (log_px_z + stats.norm.logpdf(z).sum(-1) - stats.norm.logpdf(z, mean, std).sum(-1))
    np.testing.assert_allclose(out["log_px"], special.logsumexp(log_w, axis=0) - np.log(K), rtol=1e-4)
    np.testing.assert_allclose(out["elbo"], log_w.mean(0), rtol=1e-4)
    np.testing.assert_allclose(out["reconstruction"], -log_px_z.mean(0), rtol=1e-4)
    assert np.all(out["log_px"] >= out["elbo"] - 1e-4)

    # The label is used: another class gives another log p(x | y).
    other = jax.jit(lambda x, y: variant_estimates(model, variant, config, params, x, key, K, CHUNK, y))(
        jnp.asarray(x), jnp.asarray((labels + 1) % 10))
    assert not np.allclose(np.asarray(other["log_px"]), out["log_px"], rtol=1e-3)


def test_a_conditional_estimate_without_labels_is_refused(built):
    config, model, params = built("cvae")
    with pytest.raises(ValueError, match="needs labels"):
        variant_estimates(model, objectives.get("cvae"), config, params, jnp.zeros((2, *SHAPE)),
                          jax.random.PRNGKey(0), 4, 4)


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory):
    import experiments.cvae as experiment
    workdir = str(tmp_path_factory.mktemp("cvae"))
    train_and_evaluate(experiment.get_config("smoke"), workdir)
    return workdir


def test_evaluate_a_cvae_run_reports_log_p_x_given_y_reconstruction_and_clustering(cvae_run):
    options = EvalOptions(num_importance_samples=8, samples_per_chunk=4, n2d=False, max_examples=150,
                          num_quality_samples=0)
    report = evaluate_run(cvae_run, options=options)
    metrics = report["metrics"]
    assert {"log_px_iw", "elbo", "kl", "active_units", "recon_mse_per_pixel", "recon_bce_nats",
            "kmeans_codes_accuracy", "kmeans_codes_nmi", "probe_codes_accuracy"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())
    assert metrics["log_px_iw"] >= metrics["elbo"] - 1e-3
    assert "log p(x | y)" in report["conditional"] and "log p(x | y)" in format_table(report)

    # The report's log p(x | y) is the estimator's with the test labels (as many images, the same seed).
    import aejax
    from aejax.evaluation.inputs import evaluation_split, load_eval_data
    trained = aejax.load(cvae_run)
    test = load_eval_data(trained.config, evaluation_split(trained.config), 150)
    direct = likelihood_estimates(trained, test.x, num_samples=8, samples_per_chunk=4, batch_size=100, seed=0,
                                  labels=test.labels)
    np.testing.assert_allclose(metrics["log_px_iw"], np.mean(direct["log_px"]), rtol=1e-5)
