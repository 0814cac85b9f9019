"""The importance-weighted log p(x) against a model whose marginal is known in closed form.

Linear Gaussian latent model: p(z) = N(0, I), p(x | z) = N(Wz + b, σ²I)
  ⇒ p(x) = N(b, WWᵀ + σ²I)          (scipy.stats.multivariate_normal.logpdf)
     p(z | x) = N(Σ Wᵀ(x − b)/σ², Σ), Σ = (I + WᵀW/σ²)⁻¹
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from aejax.evaluation.likelihood import (active_units, bits_per_dim, chunked_importance_estimates,
                                         importance_weighted_log_likelihood)

SIGMA = 0.5


def linear_gaussian(seed=0, latent=2, observed=5, orthogonal=True):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(observed, latent))
    if orthogonal:  # WᵀW diagonal ⇒ the exact posterior is a diagonal Gaussian
        q, _ = np.linalg.qr(w)
        w = q * np.array([2.0, 0.7, 1.3][:latent])
    b = rng.normal(size=observed)
    return w, b


def decoder_log_prob(w, b):
    w, b = jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)

    def log_prob(z, x):  # written out, not via aejax.distributions
        mean = z @ w.T + b
        return jnp.sum(-0.5 * (jnp.square(x - mean) / SIGMA ** 2 + np.log(2 * np.pi * SIGMA ** 2)), -1)
    return log_prob


def exact_log_px(w, b, x):
    cov = w @ w.T + SIGMA ** 2 * np.eye(len(b))
    return stats.multivariate_normal(b, cov).logpdf(x)


def posterior(w, b, x):
    cov = np.linalg.inv(np.eye(w.shape[1]) + w.T @ w / SIGMA ** 2)
    mean = (x - b) @ w @ cov / SIGMA ** 2
    return mean, np.diag(cov)


def data(w, b, n, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, w.shape[1])) @ w.T + b + SIGMA * rng.normal(size=(n, len(b)))


def estimate(w, b, x, mean, var, num_samples, samples_per_chunk=100, seed=0):
    out = importance_weighted_log_likelihood(
        jax.random.PRNGKey(seed), jnp.asarray(x, jnp.float32), jnp.asarray(mean, jnp.float32),
        jnp.log(jnp.asarray(var, jnp.float32)), decoder_log_prob(w, b), num_samples, samples_per_chunk)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


@pytest.mark.parametrize("num_samples, samples_per_chunk", [(1, 100), (20, 7)])
def test_exact_posterior_gives_the_exact_log_likelihood_for_any_k(num_samples, samples_per_chunk):
    # With q = p(z|x) every weight equals p(x). K = 20 in chunks of 7 draws 21 samples:
    # counting the masked 21st would be off by log(21/20) ≈ 0.049.
    w, b = linear_gaussian()
    x = data(w, b, 16)
    mean, var = posterior(w, b, x)
    out = estimate(w, b, x, mean, np.broadcast_to(var, mean.shape), num_samples, samples_per_chunk)
    np.testing.assert_allclose(out["log_px"], exact_log_px(w, b, x), atol=2e-4)
    np.testing.assert_allclose(out["elbo"], exact_log_px(w, b, x), atol=2e-4)


def test_converges_to_the_closed_form_with_an_arbitrary_q():
    w, b = linear_gaussian(seed=3, latent=3, observed=6, orthogonal=False)
    x = data(w, b, 32)
    mean, var = posterior(w, b, x)   # a diagonal q that is not the (full-covariance) posterior,
    rng = np.random.default_rng(2)   # shifted and widened arbitrarily (wide enough, ≥ 3 × the
    std = np.sqrt(var)               # marginal variances in 3-D, for the weights to stay bounded)
    q_mean = mean + 0.5 * std * rng.normal(size=mean.shape)
    q_var = 3.0 * np.broadcast_to(var, mean.shape) * rng.uniform(1.0, 1.5, size=mean.shape)
    exact = exact_log_px(w, b, x)
    one = estimate(w, b, x, q_mean, q_var, 1)
    many = estimate(w, b, x, q_mean, q_var, 5000)
    assert np.mean(exact - one["log_px"]) > 0.3          # a real gap at K = 1 ...
    np.testing.assert_allclose(many["log_px"], exact, atol=0.1)    # ... closed at K = 5000
    assert abs(np.mean(many["log_px"] - exact)) < 0.02


def test_never_below_the_elbo_and_does_not_decrease_with_k():
    w, b = linear_gaussian(seed=4, latent=2, observed=5, orthogonal=False)
    x = data(w, b, 400)
    mean, var = posterior(w, b, x)
    q_var = 0.3 * np.broadcast_to(var, mean.shape)   # too narrow: a large gap to close
    exact = np.mean(exact_log_px(w, b, x))
    estimates = []
    for k in (1, 10, 100, 1000):
        out = estimate(w, b, x, mean, q_var, k)
        assert np.all(out["log_px"] >= out["elbo"] - 1e-4)
        if k == 1:
            np.testing.assert_allclose(out["log_px"], out["elbo"], atol=1e-5)
        estimates.append(np.mean(out["log_px"]))
    assert all(later > earlier for earlier, later in zip(estimates, estimates[1:])), estimates
    assert estimates[-1] <= exact + 0.01 and exact - estimates[-1] < exact - estimates[0]
    # The ELBO itself is the Monte Carlo mean of log w: compare with its closed form
    # E_q[log p(x|z)] + E_q[log p(z)] − E_q[log q(z|x)] (numpy, Gaussian identities).
    q_std2 = q_var
    resid = x - mean @ w.T - b
    expected_log_px_z = np.sum(-0.5 * (resid ** 2 / SIGMA ** 2 + np.log(2 * np.pi * SIGMA ** 2)), -1) \
        - 0.5 * np.sum((w ** 2).sum(0) * q_std2, -1) / SIGMA ** 2
    kl = 0.5 * np.sum(mean ** 2 + q_std2 - np.log(q_std2) - 1, -1)
    out = estimate(w, b, x, mean, q_var, 1000)
    assert np.mean(out["elbo"]) == pytest.approx(np.mean(expected_log_px_z - kl), abs=0.02)


def test_chunking_only_bounds_memory():
    w, b = linear_gaussian(seed=5, orthogonal=False)
    x = data(w, b, 64)
    mean, var = posterior(w, b, x)
    q_var = 0.5 * np.broadcast_to(var, mean.shape)
    a = estimate(w, b, x, mean, q_var, 3000, samples_per_chunk=1000)
    c = estimate(w, b, x, mean, q_var, 3000, samples_per_chunk=30, seed=1)
    np.testing.assert_allclose(np.mean(a["log_px"]), np.mean(c["log_px"]), atol=0.01)


def test_a_variants_own_log_weights_are_chunked_like_the_default():
    # The hook path (Variant.importance_log_weights): log-weights of the linear Gaussian model
    # under its exact, full-covariance posterior (not a diagonal Gaussian), written here with
    # numpy's Cholesky factor: every weight is p(x), so any K in any chunks gives the closed form.
    w, b = linear_gaussian(seed=6, latent=3, observed=5, orthogonal=False)
    x = data(w, b, 12)
    cov = np.linalg.inv(np.eye(3) + w.T @ w / SIGMA ** 2)
    mean = (x - b) @ w @ cov / SIGMA ** 2
    chol, log_det = np.linalg.cholesky(cov), np.linalg.slogdet(cov)[1]
    log_px_z = decoder_log_prob(w, b)

    def log_weights(key, chunk):
        eps = jax.random.normal(key, (chunk, *mean.shape))
        z = jnp.asarray(mean, jnp.float32) + eps @ jnp.asarray(chol.T, jnp.float32)
        log_q = jnp.sum(-0.5 * (np.log(2 * np.pi) + eps ** 2), -1) - 0.5 * log_det
        log_prior = jnp.sum(-0.5 * (np.log(2 * np.pi) + z ** 2), -1)
        log_lik = log_px_z(z.reshape(-1, 3), jnp.tile(jnp.asarray(x, jnp.float32), (chunk, 1))).reshape(chunk, -1)
        return log_lik + log_prior - log_q, log_lik

    out = chunked_importance_estimates(jax.random.PRNGKey(0), log_weights, 20, len(x), samples_per_chunk=7)
    np.testing.assert_allclose(out["log_px"], exact_log_px(w, b, x), atol=5e-4)
    np.testing.assert_allclose(out["elbo"], exact_log_px(w, b, x), atol=5e-4)


def test_active_units_and_bits_per_dim_by_hand():
    means = np.array([[0.0, 1.0, 0.05], [0.0, -1.0, -0.05], [0.0, 1.0, 0.05], [0.0, -1.0, -0.05]])
    count, variance = active_units(means, threshold=0.01)
    np.testing.assert_allclose(variance, [0.0, 1.0, 0.0025])
    assert count == 1
    assert bits_per_dim(-784 * np.log(2.0), 784) == pytest.approx(1.0)
