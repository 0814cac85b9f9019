"""WAE-MMD and InfoVAE: the MMD estimators against a numpy double loop and a closed form; the losses by hand."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.core import distributions
from aejax.core.errors import ConfigError
from aejax.objectives import mmd


def u_statistic_mmd(x, y, k):
    """MMD² as the unbiased U-statistic, one pair at a time: means over i ≠ j within, all pairs across."""
    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def numpy_rbf(h):
    return lambda a, b: math.exp(-np.sum((a - b) ** 2) / (2 * h * h))


def numpy_imq(scales):
    return lambda a, b: sum(c / (c + np.sum((a - b) ** 2)) for c in scales)


KERNELS = {  # name: (aejax kernel, numpy kernel)
    "rbf": (distributions.rbf_kernel(1.3), numpy_rbf(1.3)),
    "imq": (distributions.imq_kernel((0.6, 3.0, 30.0)), numpy_imq((0.6, 3.0, 30.0))),
}


@pytest.mark.parametrize("name", KERNELS)
def test_mmd_matches_the_u_statistic_by_double_loop(name):
    kernel, numpy_kernel = KERNELS[name]
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(17, 3)), rng.normal(size=(11, 3)) * 1.5 + 0.4
    expected = u_statistic_mmd(x, y, numpy_kernel)
    got = distributions.mmd_unbiased(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), kernel)
    np.testing.assert_allclose(float(got), expected, rtol=1e-4, atol=1e-6)


def test_mmd_rbf_is_the_shared_estimator_with_the_rbf_kernel():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(9, 2)), rng.normal(size=(7, 2))
    np.testing.assert_allclose(float(distributions.mmd_rbf(jnp.asarray(x), jnp.asarray(y), 0.8)),
                               u_statistic_mmd(x, y, numpy_rbf(0.8)), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", KERNELS)
def test_same_distribution_scores_zero_and_shifted_ones_do_not(name):
    kernel = KERNELS[name][0]
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    a, b, c = (jax.random.normal(k, (1000, 4)) for k in keys)
    same = float(distributions.mmd_unbiased(a, b, kernel))
    shifted = float(distributions.mmd_unbiased(a, c + 1.0, kernel))
    assert abs(same) < 0.01 < shifted


def rbf_mmd_between_gaussians(mean1, var1, mean2, var2, h, d):
    """Closed form of MMD² between N(μ1, σ1² I) and N(μ2, σ2² I) in d dims, RBF kernel of bandwidth h.

    X − Y ~ N(μ1 − μ2, (σ1² + σ2²) I), and E exp(−‖W‖²/2h²) for W ~ N(m, s I) is
    (h²/(h² + s))^{d/2} exp(−‖m‖²/(2(h² + s))).
    """
    def expected_kernel(shift, s):
        return (h * h / (h * h + s)) ** (d / 2) * math.exp(-shift / (2 * (h * h + s)))

    shift = float(np.sum((np.asarray(mean1) - np.asarray(mean2)) ** 2))
    return expected_kernel(0.0, 2 * var1) + expected_kernel(0.0, 2 * var2) - 2 * expected_kernel(shift, var1 + var2)


@pytest.mark.parametrize("mean_shift,std2", [(0.0, 1.0), (0.5, 1.0), (0.0, 1.5), (1.0, 0.7)])
def test_rbf_mmd_of_gaussians_matches_the_closed_form(mean_shift, std2):
    d, h, n = 3, 1.5, 3000
    x = jax.random.normal(jax.random.PRNGKey(1), (n, d))
    y = mean_shift + std2 * jax.random.normal(jax.random.PRNGKey(2), (n, d))
    expected = rbf_mmd_between_gaussians(np.zeros(d), 1.0, np.full(d, mean_shift), std2 ** 2, h, d)
    got = float(distributions.mmd_rbf(x, y, h))
    # The U-statistic's standard deviation at n = 3000 is below 0.005 for these pairs.
    assert got == pytest.approx(expected, abs=0.006)


def test_imq_scales_are_the_papers():
    config = type("C", (), {"latent_dim": 8, "mmd_scales": (0.1, 1.0, 10.0)})()
    np.testing.assert_allclose(mmd.imq_scales(config), (1.6, 16.0, 160.0))


def test_wae_loss_by_hand(built):
    config, model, params = built("wae_mmd", wae_lambda=3.0)
    x = jax.random.uniform(jax.random.PRNGKey(5), (6, 8, 8, 1))
    key = jax.random.PRNGKey(7)
    loss, metrics = mmd.make_wae_loss(model, config)(params, {"image": x}, key, 0)
    out, z = model.apply(params, x)
    x_hat = 1 / (1 + np.exp(-np.asarray(out, np.float64)))  # Bernoulli decoder: the mean is σ(logits)
    cost = np.sum((np.asarray(x) - x_hat) ** 2, axis=(1, 2, 3)).mean()
    prior = np.asarray(jax.random.normal(key, z.shape))
    scales = [2 * config.latent_dim * s for s in config.mmd_scales]
    expected_mmd = u_statistic_mmd(np.asarray(z, np.float64), prior, numpy_imq(scales))
    np.testing.assert_allclose(float(metrics["reconstruction"]), cost, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["mmd"]), expected_mmd, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(float(loss), cost + 3.0 * expected_mmd, rtol=1e-4)
    # The likelihood cost: −log p(x | x̂) of the Bernoulli decoder, i.e. the pixel cross-entropy.
    config.wae_cost = "likelihood"
    _, nll_metrics = mmd.make_wae_loss(model, config)(params, {"image": x}, key, 0)
    bce = -np.sum(np.asarray(x) * np.log(x_hat) + (1 - np.asarray(x)) * np.log(1 - x_hat), axis=(1, 2, 3)).mean()
    np.testing.assert_allclose(float(nll_metrics["reconstruction"]), bce, rtol=1e-5)


@pytest.mark.parametrize("alpha,lam", [(0.0, 1000.0), (1.0, 5.0), (-0.5, 2.0)])
def test_info_vae_loss_by_hand(built, alpha, lam):
    config, model, params = built("info_vae", info_alpha=alpha, info_lambda=lam)
    x = jax.random.bernoulli(jax.random.PRNGKey(5), 0.4, (6, 8, 8, 1)).astype(jnp.float32)
    key = jax.random.PRNGKey(7)
    loss, metrics = mmd.make_info_vae_loss(model, config)(params, {"image": x}, key, 0)
    sample_key, prior_key = jax.random.split(key)
    mean, logvar = (np.asarray(a, np.float64) for a in model.apply(params, x, method="encode"))
    z = mean + np.exp(0.5 * logvar) * np.asarray(jax.random.normal(sample_key, mean.shape))
    logits = np.asarray(model.apply(params, jnp.asarray(z, jnp.float32), method="decode"), np.float64)
    xs = np.asarray(x, np.float64)
    reconstruction = -np.sum(xs * logits - np.logaddexp(0, logits), axis=(1, 2, 3))
    kl = 0.5 * np.sum(mean ** 2 + np.exp(logvar) - logvar - 1, axis=-1)
    prior = np.asarray(jax.random.normal(prior_key, mean.shape))
    h = math.sqrt(config.latent_dim * config.info_rbf_scale)  # exp(−‖·‖²/D) at the default s = 0.5
    expected_mmd = u_statistic_mmd(z, prior, numpy_rbf(h))
    expected = np.mean(reconstruction + (1 - alpha) * kl) + (alpha + lam - 1) * expected_mmd
    np.testing.assert_allclose(float(metrics["mmd"]), expected_mmd, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4)
    np.testing.assert_allclose(float(metrics["elbo"]), -np.mean(reconstruction + kl), rtol=1e-4)


def test_info_vae_refuses_a_negative_mmd_weight(built):
    config, model, _ = built("info_vae", info_alpha=-2.0, info_lambda=1.5)
    with pytest.raises(ConfigError, match="α \\+ λ − 1 = -1.5 < 0"):
        mmd.make_info_vae_loss(model, config)


def test_info_vae_weights_reduce_to_the_vae_and_the_mmd_vae():
    def weights(alpha, lam):
        return mmd.info_vae_weights(type("C", (), {"info_alpha": alpha, "info_lambda": lam})())
    assert weights(0.0, 1.0) == (1.0, 0.0)     # the VAE
    assert weights(1.0, 10.0) == (0.0, 10.0)   # the MMD-VAE: no per-image KL
