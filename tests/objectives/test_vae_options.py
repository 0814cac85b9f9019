"""VAE options (KL warm-up, free bits, learned decoder variance) and the IWAE bound, checked independently."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

from aejax import objectives
from aejax.core.errors import ConfigError
from aejax.objectives import vae

SHAPE = (8, 8, 1)


def binary_images(n=32, seed=0):
    return jnp.asarray(np.random.default_rng(seed).random((n, *SHAPE)) < 0.4, jnp.float32)


def test_kl_warm_up_scales_the_kl_linearly_from_zero(built):
    config, model, params = built("vae", kl_warmup_steps=100, beta=2.0)
    loss_fn = vae.make_negative_elbo(model, config)
    batch, key = {"image": binary_images()}, jax.random.PRNGKey(0)
    for step, weight in ((0, 0.0), (25, 0.5), (50, 1.0), (100, 2.0), (1000, 2.0)):
        loss, m = loss_fn(params, batch, key, jnp.asarray(step))
        assert float(m["kl_weight"]) == pytest.approx(weight)
        assert float(loss) == pytest.approx(float(m["reconstruction"]) + weight * float(m["kl"]), rel=1e-5)
    # Without a warm-up the weight is β from the first step.
    config, model, params = built("vae", kl_warmup_steps=0, beta=2.0)
    _, m = vae.make_negative_elbo(model, config)(params, batch, key, jnp.asarray(0))
    assert float(m["kl_weight"]) == 2.0


def test_free_bits_floor_each_dimension_s_batch_mean_kl(built):
    config, model, params = built("vae", free_bits=0.3, latent_dim=6)
    batch, key = {"image": binary_images()}, jax.random.PRNGKey(0)
    loss_fn = vae.make_negative_elbo(model, config)
    loss, m = loss_fn(params, batch, key, 0)
    # Independent KL per dim from the encoder's outputs, in numpy.
    mean, logvar = (np.asarray(a, np.float64) for a in model.apply(params, batch["image"], method="encode"))
    kl_per_dim = np.mean(0.5 * (mean ** 2 + np.exp(logvar) - logvar - 1), axis=0)
    np.testing.assert_allclose(m["kl_per_dim"], kl_per_dim, rtol=1e-4, atol=1e-6)
    expected = float(m["reconstruction"]) + np.sum(np.maximum(0.3, kl_per_dim))
    assert float(loss) == pytest.approx(expected, rel=1e-5)

    # With a floor above every dimension's KL, the KL term has no gradient at all.
    config, model, params = built("vae", free_bits=1e6)
    loss_fn = vae.make_negative_elbo(model, config)
    grads = jax.grad(lambda p: loss_fn(p, batch, key, 0)[0])(params)
    reconstruction_grads = jax.grad(lambda p: loss_fn(p, batch, key, 0)[1]["reconstruction"])(params)
    for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(reconstruction_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_learned_decoder_variance_is_a_model_parameter_read_by_the_likelihood(built):
    config, model, params = built("vae_gaussian")
    assert params["params"]["decoder_logvar"].shape == ()
    params = {"params": {**params["params"], "decoder_logvar": jnp.asarray(-1.5)}}
    x = jnp.asarray(np.random.default_rng(0).random((4, *SHAPE)), jnp.float32)
    out = jnp.asarray(np.random.default_rng(1).random((4, *SHAPE)), jnp.float32)
    p_x = objectives.get("vae").likelihood(params, config)
    expected = stats.norm.logpdf(np.asarray(x, np.float64), np.asarray(out, np.float64),
                                 np.exp(-0.75)).reshape(4, -1).sum(-1)
    np.testing.assert_allclose(p_x.log_prob(out, x), expected, rtol=1e-5)
    # The ELBO's gradient reaches it, so training learns σ².
    loss_fn = vae.make_negative_elbo(model, config)
    grad = jax.grad(lambda p: loss_fn(p, {"image": x}, jax.random.PRNGKey(0), 0)[0])(params)
    assert float(jnp.abs(grad["params"]["decoder_logvar"])) > 0


def test_learned_variance_needs_a_model_that_has_it(built):
    config, model, params = built("stacked_ae", likelihood="gaussian_learned")
    with pytest.raises(ConfigError, match="learned decoder variance"):
        objectives.get("stacked_ae").likelihood(params, config)


def test_iwae_with_one_sample_is_the_single_sample_elbo_estimate_with_the_same_noise(built):
    config, model, params = built("iwae", num_importance_samples=1)
    x, key = binary_images(), jax.random.PRNGKey(7)
    loss, _ = vae.make_negative_iwae_bound(model, config)(params, {"image": x}, key, 0)
    # The same noise: ε = normal(key, [K, B, latent_dim]).
    eps = np.asarray(jax.random.normal(key, (1, len(x), config.latent_dim)), np.float64)[0]
    mean, logvar = (np.asarray(a, np.float64) for a in model.apply(params, x, method="encode"))
    std = np.exp(0.5 * logvar)
    z = mean + std * eps
    logits = np.asarray(model.apply(params, jnp.asarray(z, jnp.float32), method="decode"), np.float64)
    p = expit(logits).reshape(len(x), -1)
    xs = np.asarray(x, np.float64).reshape(len(x), -1)
    log_px = np.sum(xs * np.log(p) + (1 - xs) * np.log1p(-p), axis=-1)
    elbo_estimate = log_px + stats.norm.logpdf(z).sum(-1) - stats.norm.logpdf(z, mean, std).sum(-1)
    assert -float(loss) == pytest.approx(np.mean(elbo_estimate), rel=1e-5)


def test_iwae_bound_is_above_the_elbo_and_rises_with_k(built, with_changes):
    config, model, params = built("iwae")
    x = binary_images(64)
    keys = jax.random.split(jax.random.PRNGKey(0), 64)

    def mean_bound(k):
        loss_fn = jax.jit(vae.make_negative_iwae_bound(model, with_changes(config, num_importance_samples=k)))
        return np.mean([-float(loss_fn(params, {"image": x}, key, 0)[0]) for key in keys])

    elbo_fn = jax.jit(vae.make_negative_elbo(model, config))
    elbo = np.mean([float(elbo_fn(params, {"image": x}, key, 0)[1]["elbo"]) for key in keys])
    bounds = {k: mean_bound(k) for k in (1, 4, 32)}
    # E[L_1] is the ELBO (here estimated with the analytic KL); L_K rises with K.
    assert bounds[1] == pytest.approx(elbo, abs=0.2)
    assert elbo < bounds[4] - 0.5 and bounds[4] < bounds[32] - 0.5, (elbo, bounds)
