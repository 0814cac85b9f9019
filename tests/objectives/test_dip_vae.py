"""DIP-VAE: the covariances against numpy (and Monte Carlo samples of q(z)), the penalty and loss by hand."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.objectives import dip_vae


def random_posteriors(seed=0, m=64, d=4):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d))
    mean = rng.normal(size=(m, d)) @ mixing + rng.normal(size=d)
    logvar = rng.uniform(-2, 1, size=(m, d))
    return mean, logvar


def test_type_i_is_the_covariance_of_the_means():
    mean, logvar = random_posteriors()
    got = dip_vae.dip_covariance(jnp.asarray(mean), jnp.asarray(logvar), "i")
    np.testing.assert_allclose(got, np.cov(mean, rowvar=False, bias=True), rtol=1e-4, atol=1e-5)


def test_type_ii_is_the_covariance_of_the_mixture_q_z():
    mean, logvar = random_posteriors()
    got = np.asarray(dip_vae.dip_covariance(jnp.asarray(mean), jnp.asarray(logvar), "ii"))
    expected = np.cov(mean, rowvar=False, bias=True) + np.diag(np.exp(logvar).mean(axis=0))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # Monte Carlo: z ~ q(z) = (1/M) Σ_i N(μ_i, diag σ_i²), many draws per posterior.
    rng = np.random.default_rng(1)
    z = mean[:, None] + np.exp(0.5 * logvar)[:, None] * rng.normal(size=(len(mean), 20_000, mean.shape[1]))
    mc = np.cov(z.reshape(-1, mean.shape[1]), rowvar=False)
    np.testing.assert_allclose(got, mc, atol=0.03 * np.abs(expected).max())


def test_penalty_terms_by_loops():
    cov = np.random.default_rng(2).normal(size=(5, 5))
    off, diag = dip_vae.dip_penalty_terms(jnp.asarray(cov))
    expected_off = sum(cov[i, j] ** 2 for i in range(5) for j in range(5) if i != j)
    expected_diag = sum((cov[i, i] - 1) ** 2 for i in range(5))
    np.testing.assert_allclose([float(off), float(diag)], [expected_off, expected_diag], rtol=1e-5)
    zero_off, zero_diag = dip_vae.dip_penalty_terms(jnp.eye(4))
    assert float(zero_off) == float(zero_diag) == 0.0


@pytest.mark.parametrize("dip_type", ["i", "ii"])
def test_loss_by_hand(built, dip_type):
    config, model, params = built("dip_vae_dsprites", shape=(8, 8, 1), dip_type=dip_type, dip_lambda_od=3.0,
                                  dip_lambda_d=7.0)
    x = jax.random.bernoulli(jax.random.PRNGKey(5), 0.4, (16, 8, 8, 1)).astype(jnp.float32)
    key = jax.random.PRNGKey(7)
    loss, metrics = dip_vae.make_dip_vae_loss(model, config)(params, {"image": x}, key, 0)
    mean, logvar = (np.asarray(a, np.float64) for a in model.apply(params, x, method="encode"))
    z = mean + np.exp(0.5 * logvar) * np.asarray(jax.random.normal(key, mean.shape))
    logits = np.asarray(model.apply(params, jnp.asarray(z, jnp.float32), method="decode"), np.float64)
    xs = np.asarray(x, np.float64)
    reconstruction = -np.sum(xs * logits - np.logaddexp(0, logits), axis=(1, 2, 3))
    kl = 0.5 * np.sum(mean ** 2 + np.exp(logvar) - logvar - 1, axis=-1)
    cov = np.cov(mean, rowvar=False, bias=True)
    if dip_type == "ii":
        cov += np.diag(np.exp(logvar).mean(axis=0))
    penalty = 3.0 * (np.sum(cov ** 2) - np.sum(np.diag(cov) ** 2)) + 7.0 * np.sum((np.diag(cov) - 1) ** 2)
    np.testing.assert_allclose(float(metrics["dip_penalty"]), penalty, rtol=1e-4)
    np.testing.assert_allclose(float(loss), np.mean(reconstruction + kl) + penalty, rtol=1e-4)
    np.testing.assert_allclose(float(metrics["elbo"]), -np.mean(reconstruction + kl), rtol=1e-4)
