"""The maths of aejax.distributions against independent numpy/scipy computation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from aejax.core import distributions


def test_analytic_kl_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=5) * 1.5
    logvar = rng.normal(size=5)
    std = np.exp(0.5 * logvar)
    z = mean + std * rng.standard_normal((400_000, 5))
    mc = np.mean(stats.norm.logpdf(z, mean, std) - stats.norm.logpdf(z), axis=0)
    analytic = np.asarray(distributions.kl_divergence(jnp.asarray(mean), jnp.asarray(logvar)))
    np.testing.assert_allclose(analytic, mc, atol=0.01, rtol=0.01)


def test_kl_is_zero_only_at_the_prior():
    assert float(distributions.kl_divergence(jnp.zeros(3), jnp.zeros(3)).sum()) == 0.0
    assert float(distributions.kl_divergence(jnp.ones(3) * 0.1, jnp.zeros(3)).sum()) > 0.0


def test_reparameterized_gradient_matches_closed_form_and_score_function():
    # E_q[z²] = μ² + σ²: d/dμ = 2μ, d/dlogvar = σ² (σ² = exp(logvar)).
    mean, logvar = jnp.array([0.7, -1.2]), jnp.array([-0.3, 0.4])
    keys = jax.random.split(jax.random.PRNGKey(0), 200_000)

    def objective(mean, logvar):
        z = jax.vmap(lambda k: distributions.reparameterize(k, mean, logvar))(keys)
        return jnp.mean(jnp.sum(z ** 2, axis=-1))

    g_mean, g_logvar = jax.grad(objective, argnums=(0, 1))(mean, logvar)
    np.testing.assert_allclose(g_mean, 2 * mean, rtol=0.03, atol=0.02)
    np.testing.assert_allclose(g_logvar, jnp.exp(logvar), rtol=0.03, atol=0.02)

    # Score-function (REINFORCE) estimate, computed in numpy, agrees too.
    rng = np.random.default_rng(1)
    m, lv = np.asarray(mean), np.asarray(logvar)
    var = np.exp(lv)
    z = m + np.sqrt(var) * rng.standard_normal((2_000_000, 2))
    f = np.sum(z ** 2, axis=-1, keepdims=True)
    score_mean = (z - m) / var
    score_logvar = 0.5 * ((z - m) ** 2 / var - 1)
    np.testing.assert_allclose(g_mean, np.mean((f - f.mean()) * score_mean, 0), rtol=0.05, atol=0.05)
    np.testing.assert_allclose(g_logvar, np.mean((f - f.mean()) * score_logvar, 0), rtol=0.05, atol=0.05)


def test_reparameterized_gradient_matches_finite_differences():
    key = jax.random.PRNGKey(3)
    f = lambda mean, logvar: jnp.sum(jnp.sin(distributions.reparameterize(key, mean, logvar)))
    mean, logvar = jnp.array([0.3, -0.5]), jnp.array([0.1, -0.2])
    grad = jax.grad(f, argnums=(0, 1))(mean, logvar)
    eps = 1e-3
    for arg, g in ((0, grad[0]), (1, grad[1])):
        for i in range(2):
            delta = jnp.zeros(2).at[i].set(eps)
            args_plus = [mean, logvar]; args_minus = [mean, logvar]
            args_plus[arg] = args_plus[arg] + delta
            args_minus[arg] = args_minus[arg] - delta
            fd = (f(*args_plus) - f(*args_minus)) / (2 * eps)
            np.testing.assert_allclose(g[i], fd, rtol=1e-2, atol=1e-3)


def test_bernoulli_log_prob_matches_numpy():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(4, 3, 3, 1)) * 3
    x = rng.random((4, 3, 3, 1))
    p = 1 / (1 + np.exp(-logits))
    expected = np.sum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=(1, 2, 3))
    got = distributions.BERNOULLI.log_prob(jnp.asarray(logits, jnp.float32), jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("logvar", [0.0, -1.3])
def test_gaussian_likelihood_matches_scipy(logvar):
    rng = np.random.default_rng(3)
    mean, x = rng.random((2, 5, 4, 4, 1))
    expected = np.sum(stats.norm.logpdf(x, mean, np.exp(0.5 * logvar)), axis=(1, 2, 3))
    got = distributions.gaussian_likelihood(logvar).log_prob(jnp.asarray(mean), jnp.asarray(x))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_diagonal_gaussian_and_prior_log_prob_match_scipy():
    rng = np.random.default_rng(4)
    z, mean, logvar = rng.normal(size=(3, 6, 4))
    expected = np.sum(stats.norm.logpdf(z, mean, np.exp(0.5 * logvar)), axis=-1)
    np.testing.assert_allclose(distributions.diagonal_gaussian_log_prob(z, mean, logvar), expected, rtol=1e-5)
    np.testing.assert_allclose(distributions.standard_normal_log_prob(z),
                               np.sum(stats.norm.logpdf(z), axis=-1), rtol=1e-5)


def test_pixel_sums_and_means_match_numpy_on_image_shaped_rows():
    rng = np.random.default_rng(5)
    values = rng.normal(size=(6, 5, 7, 3)).astype(np.float32) * 10
    np.testing.assert_allclose(distributions.sum_pixels(jnp.asarray(values)), values.sum(axis=(1, 2, 3)),
                               rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(distributions.mean_pixels(jnp.asarray(values)), values.mean(axis=(1, 2, 3)),
                               rtol=1e-5, atol=1e-5)
    assert distributions.flat_pixels(jnp.asarray(values)).shape == (6, 105)
    # Rows stay rows: a sum over the wrong axis (or over the batch) would fail the comparison above.
    assert not np.allclose(values.sum(axis=(1, 2, 3)), values.reshape(105, 6).sum(axis=0))


def test_pixel_sums_keep_float32_accuracy_where_a_bf16_product_would_not():
    """The sum is a matvec at HIGHEST precision: a bf16 multiply would round 1 + 2⁻¹⁰ to 1."""
    values = jnp.full((2, 4096), 1 + 2 ** -10, jnp.float32)
    np.testing.assert_allclose(distributions.sum_pixels(values), 4096 * (1 + 2 ** -10), rtol=1e-6)
    bf16 = jnp.dot(values.astype(jnp.bfloat16), jnp.ones(4096, jnp.bfloat16), preferred_element_type=jnp.float32)
    assert not np.allclose(bf16, 4096 * (1 + 2 ** -10), rtol=1e-6)
