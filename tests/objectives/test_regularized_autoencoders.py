"""The maths of the deterministic AE family against independent numpy/scipy computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit

from aejax import objectives
from aejax.core.distributions import mmd_rbf
from aejax.core.errors import ConfigError
from aejax.core.optim import gradient_update
from aejax.objectives import aae, contractive, denoising, sparse
from aejax.objectives.likelihoods import psnr

SHAPE = (8, 8, 1)


def images(n=16, seed=0):
    return jnp.asarray(np.random.default_rng(seed).random((n, *SHAPE)), jnp.float32)


def numpy_flat(tree):
    return {jax.tree_util.keystr(k): np.asarray(v, np.float64) for k, v in jax.tree_util.tree_leaves_with_path(tree)}


# ------------------------------------------------------------------ sparse ----

def test_kl_sparsity_penalty_matches_numpy():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.01, 0.99, size=(64, 30))
    rho = 0.05
    rho_hat = a.mean(axis=0)
    expected = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    config = type("C", (), {"sparsity_target": rho})()
    np.testing.assert_allclose(sparse.kl_sparsity_penalty(jnp.asarray(a, jnp.float32), config),
                               expected, rtol=1e-5)
    # Zero exactly when every unit's mean activation is ρ.
    assert float(sparse.kl_sparsity_penalty(jnp.full((8, 5), rho), config)) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("name, numpy_penalty", [
    ("sparse_l1", lambda a, rho: np.mean(np.sum(np.abs(a), axis=-1))),
    ("sparse_kl", lambda a, rho: np.sum(rho * np.log(rho / a.mean(0))
                                        + (1 - rho) * np.log((1 - rho) / (1 - a.mean(0))))),
])
def test_sparse_loss_is_reconstruction_plus_weighted_penalty_of_the_code(built, name, numpy_penalty):
    config, model, params = built(name, sparsity_weight=0.7)
    x = images()
    loss, metrics = objectives.get(config.model).make_loss(model, config)(params, {"image": x}, None, 0)
    code = np.asarray(model.apply(params, x, method="encode"), np.float64)
    penalty = numpy_penalty(code, config.sparsity_target)
    np.testing.assert_allclose(float(metrics["sparsity_penalty"]), penalty, rtol=1e-4)
    np.testing.assert_allclose(float(loss), float(metrics["reconstruction"]) + 0.7 * penalty, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["mean_activation"]), code.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["active_fraction"]), np.mean(code > config.active_threshold))


def test_kl_sparsity_needs_a_sigmoid_code(built):
    config, model, _ = built("sparse_kl", code_activation="relu")
    with pytest.raises(ConfigError, match="code_activation='sigmoid'"):
        objectives.get("sparse_kl").make_loss(model, config)


# ------------------------------------------------------------- denoising ----

def test_corruption_statistics():
    x = jnp.full((200_000,), 0.5)
    key = jax.random.PRNGKey(0)
    config = type("C", (), {"noise_std": 0.2, "corruption_prob": 0.3})()
    noise = np.asarray(denoising.CORRUPTIONS["gaussian"](key, x, config) - x)
    assert abs(noise.std() - 0.2) < 0.003 and abs(noise.mean()) < 0.003
    masked = np.asarray(denoising.CORRUPTIONS["masking"](key, x, config))
    assert abs(np.mean(masked == 0) - 0.3) < 0.005 and set(np.unique(masked)) == {0.0, 0.5}
    salted = np.asarray(denoising.CORRUPTIONS["salt_and_pepper"](key, x, config))
    hit = salted != 0.5
    assert abs(hit.mean() - 0.3) < 0.005 and abs(np.mean(salted[hit] == 1.0) - 0.5) < 0.01
    assert set(np.unique(salted)) == {0.0, 0.5, 1.0}
    # The key decides the draw: same key, same corruption; another key, another.
    again = denoising.CORRUPTIONS["masking"](key, x, config)
    other = denoising.CORRUPTIONS["masking"](jax.random.PRNGKey(1), x, config)
    assert np.array_equal(masked, again) and not np.array_equal(masked, other)


def test_psnr_matches_numpy():
    rng = np.random.default_rng(0)
    clean = rng.random((5, 8, 8, 1))
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1)
    mse = np.mean((noisy - clean) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(psnr(jnp.asarray(noisy), jnp.asarray(clean)), 10 * np.log10(1 / mse), rtol=1e-5)


def test_denoising_eval_reports_psnr_of_the_noisy_input_and_of_the_reconstruction(built):
    config, model, params = built("denoising", corruption="masking", corruption_prob=0.5)
    x, key = images(), jax.random.PRNGKey(3)
    _, metrics = objectives.get("denoising").make_eval_loss(model, config)(params, {"image": x}, key, 0)
    noisy = np.asarray(denoising.corrupt(key, x, config), np.float64)
    clean = np.asarray(x, np.float64)
    denoised = expit(np.asarray(model.apply(params, jnp.asarray(noisy, jnp.float32))[0], np.float64))

    def numpy_psnr(a):
        return np.mean(10 * np.log10(1 / np.mean((a - clean) ** 2, axis=(1, 2, 3))))
    np.testing.assert_allclose(float(metrics["psnr_noisy"]), numpy_psnr(noisy), rtol=1e-4)
    np.testing.assert_allclose(float(metrics["psnr_reconstruction"]), numpy_psnr(denoised), rtol=1e-4)


# ----------------------------------------------------------- contractive ----

def test_contractive_penalty_three_methods_agree_with_finite_differences(built):
    config, model, params = built("contractive", latent_dim=6)
    x = images(4)
    values = {m: np.asarray(contractive.contractive_penalty(model, params, x, m))
              for m in contractive.JACOBIAN_METHODS}
    np.testing.assert_allclose(values["jacrev"], values["jacfwd"], rtol=1e-5)
    np.testing.assert_allclose(values["closed_form"], values["jacfwd"], rtol=1e-5)

    # Central finite differences of h = σ(xW + b), in float64 numpy.
    p = numpy_flat(params)
    kernel, bias = p["['params']['encoder']['code']['kernel']"], p["['params']['encoder']['code']['bias']"]
    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    eps = 1e-6
    for i in range(len(x)):
        jac = np.stack([(expit((flat[i] + eps * e) @ kernel + bias) - expit((flat[i] - eps * e) @ kernel + bias))
                        / (2 * eps) for e in np.eye(flat.shape[1])], axis=1)
        np.testing.assert_allclose(values["jacfwd"][i], np.sum(jac ** 2), rtol=1e-4)


def test_contractive_jacobians_agree_on_a_deep_encoder_and_closed_form_is_refused(built, with_changes):
    config, model, params = built("contractive", hidden_dims=(12,), activation="tanh", latent_dim=5)
    x = images(3)
    np.testing.assert_allclose(contractive.contractive_penalty(model, params, x, "jacrev"),
                               contractive.contractive_penalty(model, params, x, "jacfwd"), rtol=1e-5)
    with pytest.raises(ConfigError, match="one sigmoid layer"):
        contractive.make_contractive_loss(model, with_changes(config, jacobian_method="closed_form"))


def test_contractive_loss_adds_the_weighted_penalty(built):
    config, model, params = built("contractive", contractive_weight=0.25, jacobian_method="jacrev")
    x = images()
    loss, metrics = contractive.make_contractive_loss(model, config)(params, {"image": x}, None, 0)
    penalty = np.mean(np.asarray(contractive.contractive_penalty(model, params, x, "closed_form")))
    np.testing.assert_allclose(float(metrics["contractive_penalty"]), penalty, rtol=1e-5)
    np.testing.assert_allclose(float(loss), float(metrics["reconstruction"]) + 0.25 * penalty, rtol=1e-5)


# ------------------------------------------------------------ stacked/tied ----

def test_tied_decoder_uses_the_transposed_encoder_kernels(built):
    config, model, params = built("stacked_ae", tied_weights=True, hidden_dims=(12, 7), latent_dim=3)
    p = numpy_flat(params)
    kernels = [p[f"['params']['kernel_{i}']"] for i in range(3)]
    enc_b = [p[f"['params']['encoder_bias_{i}']"] for i in range(3)]
    dec_b = [p[f"['params']['decoder_bias_{i}']"] for i in range(3)]
    assert [k.shape for k in kernels] == [(64, 12), (12, 7), (7, 3)]
    x = np.asarray(images(5), np.float64).reshape(5, -1)
    h = np.maximum(x @ kernels[0] + enc_b[0], 0)
    h = np.maximum(h @ kernels[1] + enc_b[1], 0)
    z = h @ kernels[2] + enc_b[2]
    h = np.maximum(z @ kernels[2].T + dec_b[2], 0)
    h = np.maximum(h @ kernels[1].T + dec_b[1], 0)
    logits = h @ kernels[0].T + dec_b[0]
    out, code = model.apply(params, images(5))
    np.testing.assert_allclose(code, z, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out).reshape(5, -1), logits, rtol=1e-4, atol=1e-5)
    # Tied: the decoder adds only biases; untied: a second set of kernels.
    _, _, untied = built("stacked_ae", tied_weights=False, hidden_dims=(12, 7), latent_dim=3)
    count = lambda tree: sum(v.size for v in jax.tree_util.tree_leaves(tree))
    assert count(untied) - count(params) == 64 * 12 + 12 * 7 + 7 * 3


def test_linear_ae_refuses_hidden_layers(built):
    with pytest.raises(ConfigError, match="hidden_dims=()"):
        built("linear_ae", hidden_dims=(8,))


# ------------------------------------------------------------- adversarial ----

def test_mmd_matches_numpy_and_separates_distributions():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(30, 3)) + 0.5
    h = 1.3

    def k(a, b):
        return np.exp(-np.sum((a[:, None] - b[None]) ** 2, -1) / (2 * h * h))
    kxx, kyy = k(x, x), k(y, y)
    expected = ((kxx.sum() - np.trace(kxx)) / (40 * 39) + (kyy.sum() - np.trace(kyy)) / (30 * 29)
                - 2 * k(x, y).mean())
    np.testing.assert_allclose(mmd_rbf(jnp.asarray(x), jnp.asarray(y), h), expected, rtol=1e-4, atol=1e-6)
    same = mmd_rbf(jnp.asarray(rng.normal(size=(500, 3))), jnp.asarray(rng.normal(size=(500, 3))), h)
    shifted = mmd_rbf(jnp.asarray(rng.normal(size=(500, 3))), jnp.asarray(rng.normal(size=(500, 3)) + 1), h)
    assert abs(float(same)) < 0.01 < float(shifted)


def test_priors_have_the_stated_distribution():
    config = type("C", (), {"latent_dim": 3})()
    z = np.asarray(aae.PRIORS["gaussian"](config, jax.random.PRNGKey(0), 100_000))
    np.testing.assert_allclose(z.mean(0), 0, atol=0.02)
    np.testing.assert_allclose(z.std(0), 1, atol=0.02)
    z = np.asarray(aae.PRIORS["mixture"](config, jax.random.PRNGKey(0), 100_000))
    angle = np.arctan2(z[:, 1], z[:, 0])
    component = np.rint(angle / (2 * np.pi / 10)) % 10
    counts = np.bincount(component.astype(int), minlength=10) / len(z)
    np.testing.assert_allclose(counts, 0.1, atol=0.01)
    centre = 4.0 * np.stack([np.cos(component * 2 * np.pi / 10), np.sin(component * 2 * np.pi / 10)], 1)
    np.testing.assert_allclose((z[:, :2] - centre).std(0), 0.5, atol=0.02)
    np.testing.assert_allclose(z[:, 2].std(), 0.5, atol=0.02)


def test_each_adversarial_phase_moves_only_its_own_params(built):
    config, model, params = built("aae")
    losses = aae.make_phase_losses(model, config)
    optimizers = aae.phase_optimizers(config, total_steps=10)
    batch, key = {"image": images()}, jax.random.PRNGKey(0)
    for phase, trained in aae.PHASE_PARAMS.items():
        update = gradient_update(losses[phase], optimizers[phase])
        new, _, _ = update(params, optimizers[phase].init(params), batch, key, 0)
        for part in ("encoder", "decoder", "discriminator"):
            moved = any(not np.array_equal(a, b) for a, b in zip(
                jax.tree_util.tree_leaves(params["params"][part]), jax.tree_util.tree_leaves(new["params"][part])))
            assert moved == (part in trained), (phase, part)


def test_adversarial_losses_and_accuracy_match_numpy(built):
    config, model, params = built("aae")
    x, key = images(), jax.random.PRNGKey(5)
    _, metrics = objectives.get("aae").make_loss(model, config)(params, {"image": x}, key, 0)
    z = model.apply(params, x, method="encode")
    z_prior = aae.sample_prior(config, key, len(x))
    d_code = np.asarray(model.apply(params, z, method="discriminate"), np.float64)
    d_prior = np.asarray(model.apply(params, z_prior, method="discriminate"), np.float64)
    log_sigmoid = lambda t: -np.logaddexp(0, -t)
    np.testing.assert_allclose(float(metrics["discriminator_loss"]),
                               -np.mean(log_sigmoid(d_prior)) - np.mean(log_sigmoid(-d_code)), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["generator_loss"]), -np.mean(log_sigmoid(d_code)), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["discriminator_accuracy"]),
                               0.5 * (np.mean(d_prior > 0) + np.mean(d_code < 0)))
