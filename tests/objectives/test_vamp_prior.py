"""VampPrior: the mixture prior's log-density and sampling against scipy/numpy; it trains, samples and is scored."""
import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import expit, logsumexp
from scipy.stats import norm

import aejax
from aejax.evaluation.likelihood import likelihood_estimates
from aejax.objectives import vamp_prior
from aejax.training.loop import train_and_evaluate
from aejax.training.writers import read_metrics


def test_mixture_log_prob_matches_scipy():
    rng = np.random.default_rng(0)
    means, logvars = rng.normal(size=(7, 4)), rng.uniform(-3, 1, size=(7, 4))
    z = 2 * rng.normal(size=(3, 5, 4))
    expected = logsumexp(norm.logpdf(z[..., None, :], means, np.exp(0.5 * logvars)).sum(-1), axis=-1) - np.log(7)
    got = vamp_prior.mixture_log_prob(*(jnp.asarray(a, jnp.float32) for a in (z, means, logvars)))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-4)


def test_prior_samples_have_the_mixtures_moments(built):
    config, model, params = built("vamp_prior")
    means, logvars = (np.asarray(a, np.float64) for a in model.apply(params, method="prior_components"))
    z = np.asarray(vamp_prior.sample_vamp_prior(model, config, params, jax.random.PRNGKey(0), 200_000))
    mixture_mean = means.mean(0)
    mixture_var = (np.exp(logvars) + means ** 2).mean(0) - mixture_mean ** 2
    np.testing.assert_allclose(z.mean(0), mixture_mean, atol=0.02)
    np.testing.assert_allclose(z.var(0), mixture_var, rtol=0.03)


def test_log_weights_match_numpy_densities(built):
    # log w = log Bernoulli(x | decoder(z)) + log (1/K) Σ_k N(z; μ(u_k), σ²(u_k)) − log N(z; μ(x), σ²(x)),
    # the networks' outputs taken from the model, the densities written with scipy.
    config, model, params = built("vamp_prior")
    x = jnp.asarray(np.random.default_rng(1).uniform(size=(3, 8, 8, 1)) > 0.5, jnp.float32)
    key = jax.random.PRNGKey(2)
    log_w, log_px_z = vamp_prior.vamp_importance_log_weights(model, config, params, x, key, 4)
    mean, logvar = (np.asarray(a, np.float64) for a in model.apply(params, x, method="encode"))
    z = mean + np.exp(0.5 * logvar) * np.asarray(jax.random.normal(key, (4, *mean.shape)))
    logits = np.asarray(model.apply(params, jnp.asarray(z.reshape(12, -1), jnp.float32), method="decode"),
                        np.float64).reshape(4, 3, -1)
    xs = np.asarray(x).reshape(3, -1)
    p = expit(logits)
    expected_px_z = np.sum(xs * np.log(p) + (1 - xs) * np.log1p(-p), -1)
    means, logvars = (np.asarray(a, np.float64) for a in model.apply(params, method="prior_components"))
    log_prior = logsumexp(norm.logpdf(z[..., None, :], means, np.exp(0.5 * logvars)).sum(-1), -1) - np.log(len(means))
    log_q = norm.logpdf(z, mean, np.exp(0.5 * logvar)).sum(-1)
    np.testing.assert_allclose(np.asarray(log_px_z), expected_px_z, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.asarray(log_w), expected_px_z + log_prior - log_q, rtol=1e-4, atol=2e-3)


def test_trains_samples_and_gets_an_importance_weighted_log_likelihood(tmp_path):
    from experiments import vamp_prior as experiment
    config = experiment.get_config("smoke")
    train_and_evaluate(config, str(tmp_path))
    losses = [r["train/loss"] for r in read_metrics(str(tmp_path)) if "train/loss" in r]
    assert losses[-1] < losses[0], losses
    model = aejax.load(str(tmp_path))
    assert model.sample(jax.random.PRNGKey(0), 5).shape == (5, 8, 8, 1)
    x = np.random.default_rng(0).uniform(size=(6, 8, 8, 1)).astype(np.float32)
    out = likelihood_estimates(model, x, num_samples=12, samples_per_chunk=5, batch_size=3, seed=0)
    assert np.all(np.isfinite(out["log_px"])) and np.all(out["log_px"] >= out["elbo"] - 1e-4)
    np.testing.assert_allclose(out["kl"], -out["elbo"] - out["reconstruction"], rtol=1e-6)
