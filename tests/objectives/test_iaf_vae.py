"""IAF VAE: MADE masks are autoregressive, each step's Jacobian is triangular, and log q(z_T | x) is the
change of variables with the brute-force determinant of jax.jacfwd's Jacobian (numpy slogdet)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

import aejax
import aejax.objectives
from aejax.evaluation.likelihood import likelihood_estimates
from aejax.models.iaf import made_masks
from aejax.training.loop import train_and_evaluate
from aejax.training.writers import read_metrics


@pytest.mark.parametrize("dim, hidden", [(5, (8,)), (6, (3, 7)), (4, (16, 16)), (1, (4,))])
def test_made_masks_connect_input_j_to_output_i_only_if_j_before_i(dim, hidden):
    masks = made_masks(dim, hidden)
    paths = masks[0]
    for mask in masks[1:]:
        paths = paths @ mask                          # [in, out]: number of paths from input j to output i
    below = np.tril(np.ones((dim, dim)), -1).T      # [j, i] = 1 where j < i
    assert np.all(paths[below == 0] == 0)
    if min(hidden) >= dim - 1:                       # wide enough for every allowed connection
        assert np.all(paths[below == 1] > 0)


def _built(num_flows):
    """(config, model, params) of experiments/iaf_vae.py at smoke size on 8×8 images; init compiled once
    (op by op, the T MADEs' initialisers take seconds)."""
    from experiments import iaf_vae as experiment
    config = experiment.get_config("smoke")
    config.update(image_shape=(8, 8, 1), num_flows=num_flows)
    model = aejax.objectives.get("iaf_vae").build_model(config, (8, 8, 1))
    params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((2, 8, 8, 1)), jax.random.PRNGKey(1))
    return config, model, params


def _inputs(model, params, seed=0):
    x = jax.random.uniform(jax.random.PRNGKey(seed), (3, 8, 8, 1))
    mean, logvar, h = model.apply(params, x, method="base_posterior")
    return x, mean, logvar, h


def test_each_step_has_a_lower_triangular_jacobian_with_diagonal_sigma():
    config, model, params = _built(3)
    _, mean, _, h = _inputs(model, params)
    for t in range(3):
        def step(z, h, t=t):
            return model.apply(params, z[None], h[None], method=lambda m, z, h: m.steps[t](z, h))
        jac = np.asarray(jax.jit(jax.jacfwd(lambda z: step(z, h[0])[0][0]))(mean[0] + 0.3))
        np.testing.assert_allclose(np.triu(jac, 1), 0, atol=1e-7)
        log_det = float(jax.jit(step)(mean[0] + 0.3, h[0])[1][0])
        np.testing.assert_allclose(np.sum(np.log(np.diag(jac))), log_det, rtol=1e-5, atol=1e-5)
        assert np.all((np.diag(jac) > 0) & (np.diag(jac) < 1))


def test_the_flows_jacobian_is_triangular_once_the_reversals_are_undone():
    _, model, params = _built(1)
    _, mean, _, h = _inputs(model, params)
    jac = np.asarray(jax.jacfwd(lambda z: model.apply(params, z[None], h[:1], method="flow")[0][0])(mean[0]))
    np.testing.assert_allclose(np.triu(jac, 1), 0, atol=1e-7)
    # Two steps: z_2 = f_2(P f_1(z_0)), P the reversal, so ∂z_2/∂z_0 = J_2 P J_1 with J_1, J_2 the
    # steps' own (lower-triangular) Jacobians; undoing P leaves triangular factors. The product
    # itself is dense: every output depends on every input.
    _, model, params = _built(2)
    _, mean, _, h = _inputs(model, params)
    steps = [jax.jit(lambda z, t=t: model.apply(params, z[None], h[:1], method=lambda m, z, h: m.steps[t](z, h))[0][0])
             for t in range(2)]
    z0 = mean[0]
    j1 = np.asarray(jax.jacfwd(steps[0])(z0))
    j2 = np.asarray(jax.jacfwd(steps[1])(steps[0](z0)[::-1]))
    reversal = np.eye(len(z0))[::-1]
    jac = np.asarray(jax.jacfwd(lambda z: model.apply(params, z[None], h[:1], method="flow")[0][0])(z0))
    for factor in (j1, j2):
        np.testing.assert_allclose(np.triu(factor, 1), 0, atol=1e-7)
    np.testing.assert_allclose(jac, j2 @ reversal @ j1, rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(jac) > 0)


@pytest.mark.parametrize("num_flows", [1, 3])
def test_log_q_is_the_change_of_variables_with_the_brute_force_determinant(num_flows):
    _, model, params = _built(num_flows)
    x, mean, logvar, h = _inputs(model, params)
    key = jax.random.PRNGKey(5)
    z, log_q = model.apply(params, x, key, 2, method="posterior_sample")
    eps = np.asarray(jax.random.normal(key, (2, *mean.shape)), np.float64)
    mean, logvar = np.asarray(mean, np.float64), np.asarray(logvar, np.float64)
    z0 = mean + np.exp(0.5 * logvar) * eps
    flow = jax.jit(lambda z, h: model.apply(params, z[None], h[None], method="flow")[0][0])
    jacobian = jax.jit(jax.jacfwd(flow))
    for k in range(2):
        for b in range(3):
            jac = np.asarray(jacobian(jnp.asarray(z0[k, b], jnp.float32), h[b]), np.float64)
            sign, log_abs_det = np.linalg.slogdet(jac)
            assert sign > 0
            expected = norm.logpdf(z0[k, b], mean[b], np.exp(0.5 * logvar[b])).sum() - log_abs_det
            np.testing.assert_allclose(float(log_q[k, b]), expected, rtol=1e-5, atol=2e-4)
            np.testing.assert_allclose(np.asarray(z[k, b]), np.asarray(flow(jnp.asarray(z0[k, b], jnp.float32), h[b])),
                                       atol=1e-5)


def test_trains_and_gets_an_importance_weighted_log_likelihood(tmp_path):
    from experiments import iaf_vae as experiment
    train_and_evaluate(experiment.get_config("smoke"), str(tmp_path))
    losses = [r["train/loss"] for r in read_metrics(str(tmp_path)) if "train/loss" in r]
    assert losses[-1] < losses[0], losses
    model = aejax.load(str(tmp_path))
    assert model.sample(jax.random.PRNGKey(0), 5).shape == (5, 8, 8, 1)
    assert model.code(np.zeros((2, 8, 8, 1), np.uint8)).shape == (2, 4)
    x = np.random.default_rng(0).uniform(size=(6, 8, 8, 1)).astype(np.float32)
    out = likelihood_estimates(model, x, num_samples=12, samples_per_chunk=5, batch_size=3, seed=0)
    assert np.all(np.isfinite(out["log_px"])) and np.all(out["log_px"] >= out["elbo"] - 1e-4)
