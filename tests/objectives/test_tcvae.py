"""β-TCVAE: the minibatch estimators of log q(z) against scipy, and known total correlations."""
import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from aejax.objectives import tcvae


def numpy_decomposition(z, mean, logvar, dataset_size, estimator):
    """(MI, TC, dim-KL) per sample, written out from the definitions with scipy."""
    m = len(z)
    log_q = norm.logpdf(z[:, None, :], mean[None], np.exp(0.5 * logvar)[None])  # [i, j, d]
    if estimator == "mss":  # q(z_i) = (1/N) q(z_i|x_i) + ((N-1)/N) · mean over the other batch members
        weights = np.full((m, m), (dataset_size - 1) / (dataset_size * (m - 1)))
        np.fill_diagonal(weights, 1 / dataset_size)
    else:  # Chen et al.'s MWS: every pair weighs 1/(NM)
        weights = np.full((m, m), 1 / (dataset_size * m))
    log_qz = np.array([logsumexp(log_q[i].sum(-1), b=weights[i]) for i in range(m)])
    log_qz_dims = np.array([[logsumexp(log_q[i, :, d], b=weights[i]) for d in range(z.shape[1])]
                            for i in range(m)])
    log_qz_x = np.array([log_q[i, i].sum() for i in range(m)])
    log_pz = norm.logpdf(z).sum(-1)
    return log_qz_x - log_qz, log_qz - log_qz_dims.sum(-1), log_qz_dims.sum(-1) - log_pz


def decomposition(z, mean, logvar, dataset_size, estimator):
    weights = tcvae.TC_ESTIMATORS[estimator](len(z), dataset_size)
    return [np.asarray(t, np.float64) for t in
            tcvae.kl_decomposition(*(jnp.asarray(a, jnp.float32) for a in (z, mean, logvar)), weights)]


@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_estimators_match_scipy_on_random_posteriors(estimator):
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(16, 5))
    logvar = rng.uniform(-2, 1, size=(16, 5))
    z = mean + np.exp(0.5 * logvar) * rng.normal(size=mean.shape)
    expected = numpy_decomposition(z, mean, logvar, 1000, estimator)
    got = decomposition(z, mean, logvar, 1000, estimator)
    for name, a, b in zip(("MI", "TC", "dim-KL"), got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=name)
    # The three terms telescope to the one-sample KL: log q(z|x) - log p(z).
    mc_kl = norm.logpdf(z, mean, np.exp(0.5 * logvar)).sum(-1) - norm.logpdf(z).sum(-1)
    np.testing.assert_allclose(sum(got), mc_kl, rtol=1e-4, atol=1e-4)


def _mixture_batch(centres, sigma, seed=0):
    """One z ~ N(centre_n, sigma²) per 'image' n; the batch is the whole data set (M = N)."""
    centres = np.asarray(centres, np.float64)
    logvar = np.full(centres.shape, 2 * math.log(sigma))
    z = centres + sigma * np.random.default_rng(seed).normal(size=centres.shape)
    return z, centres, logvar


def test_total_correlation_of_a_product_mixture_is_zero():
    # Centres on the full 8 x 8 grid: q(z) = (1/64) Σ_kl N(z1; k) N(z2; l) = q(z1) q(z2) exactly,
    # and with M = N the stratified weights are all 1/N, i.e. the exact aggregate posterior.
    grid = np.stack(np.meshgrid(np.arange(8.0), np.arange(8.0), indexing="ij"), -1).reshape(-1, 2)
    z, mean, logvar = _mixture_batch(grid, sigma=0.3)
    _, tc, _ = decomposition(z, mean, logvar, len(z), "mss")
    np.testing.assert_allclose(tc, 0.0, atol=1e-4)


def test_total_correlation_of_a_diagonal_mixture_is_log_k():
    # Centres (k, k): z1 determines the component, hence z2. With well separated
    # components q(z) ≈ (1/K) N(z; k), q(z_d) ≈ (1/K) N(z_d; k): TC = log K per sample.
    k = 8
    z, mean, logvar = _mixture_batch(np.repeat(np.arange(k, dtype=float)[:, None], 2, axis=1), sigma=0.05)
    _, tc, _ = decomposition(z, mean, logvar, k, "mss")
    np.testing.assert_allclose(tc, math.log(k), atol=1e-4)
    # MWS weights sum to 1/N: every log-density is low by log M here, so TC is high by (D - 1) log M.
    _, tc_mws, _ = decomposition(z, mean, logvar, k, "mws")
    np.testing.assert_allclose(tc_mws, math.log(k) + math.log(k), atol=1e-4)


def test_subsampled_batches_tell_independent_from_dependent_codes():
    # A large data set of posteriors; the estimator sees a random batch of 512 (M < N).
    rng = np.random.default_rng(1)
    n, m, sigma = 20_000, 512, 0.3
    independent = rng.normal(size=(n, 3))
    dependent = independent.copy()
    dependent[:, 1] = independent[:, 0] + 0.1 * rng.normal(size=n)  # z2 ≈ z1
    batch = rng.choice(n, m, replace=False)
    tcs = {}
    for name, centres in (("independent", independent), ("dependent", dependent)):
        z, mean, logvar = _mixture_batch(centres[batch], sigma, seed=2)
        tcs[name] = float(np.mean(decomposition(z, mean, logvar, n, "mss")[1]))
    # Independent: TC = 0 (the estimate is biased by Jensen, and small). Dependent: the true TC
    # is I(z1; z2) of a Gaussian with correlation ρ = 1/sqrt((1 + σ²)(1.01 + σ²)): -½ log(1 - ρ²).
    rho = 1 / math.sqrt((1 + sigma**2) * (1.01 + sigma**2))
    assert abs(tcs["independent"]) < 0.15, tcs
    assert abs(tcs["dependent"] - (-0.5 * math.log(1 - rho**2))) < 0.15, tcs
