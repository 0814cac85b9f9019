"""RAE (Ghosh et al. 2020) and its ex-post Gaussian-mixture prior, against numpy, finite differences, sklearn."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit
from sklearn.mixture import GaussianMixture as SklearnMixture

import aejax
from aejax import objectives
from aejax.core import gaussian_mixture
from aejax.core.errors import ConfigError, NoPriorError
from aejax.evaluation import ex_post_density
from aejax.objectives import rae
from aejax.training import config as run_config
from aejax.training.loop import train_and_evaluate

SHAPE = (8, 8, 1)


def images(n=6, seed=0):
    return jnp.asarray(np.random.default_rng(seed).random((n, *SHAPE)), jnp.float32)


def numpy_decoder(params):
    """The MLP decoder's mean image σ(…relu(z W0 + b0)… W_L + b_L), re-implemented in float64 numpy."""
    layers = params["params"]["decoder"]["MLP_0"]
    weights = [(np.asarray(layers[f"dense_{i}"]["kernel"], np.float64), np.asarray(layers[f"dense_{i}"]["bias"], np.float64))
               for i in range(len(layers))]

    def decode(z):
        h = z
        for i, (w, b) in enumerate(weights):
            h = h @ w + b
            if i < len(weights) - 1:
                h = np.maximum(h, 0)
        return expit(h)

    return decode


def test_decoder_weight_decay_is_the_sum_of_squares_of_the_decoder_params(built):
    config, model, params = built("rae")
    expected = sum(np.sum(np.square(np.asarray(leaf, np.float64)))
                   for leaf in jax.tree_util.tree_leaves(params["params"]["decoder"]))
    got = rae.decoder_weight_decay(model, config, params, None, None)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    # The encoder's params do not count.
    assert expected < sum(np.sum(np.square(np.asarray(leaf))) for leaf in jax.tree_util.tree_leaves(params))


def test_gradient_penalty_matches_central_finite_differences_of_a_numpy_decoder(built):
    config, model, params = built("rae", rae_regularizer="gp")
    z = np.random.default_rng(1).normal(size=(5, config.latent_dim))
    decode, h = numpy_decoder(params), 1e-5
    # The numpy decoder is the model's decoder (so the check below is of the derivative, not of the net).
    np.testing.assert_allclose(decode(z).reshape(5, *SHAPE),
                               jax.nn.sigmoid(model.apply(params, jnp.asarray(z, jnp.float32), method="decode")),
                               atol=1e-5)
    expected = np.zeros(len(z))
    for d in range(z.shape[1]):
        step = np.zeros_like(z)
        step[:, d] = h
        expected += np.sum(np.square((decode(z + step) - decode(z - step)) / (2 * h)), axis=-1)
    got = rae.decoder_gradient_penalty(model, config, params, None, jnp.asarray(z, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4)


@pytest.mark.parametrize("regularizer", ["l2", "gp"])
def test_rae_loss_is_reconstruction_plus_beta_half_code_norm_plus_lambda_regulariser(built, regularizer):
    config, model, params = built("rae", rae_regularizer=regularizer, rae_code_weight=0.3,
                                  rae_regularizer_weight=0.05)
    x = images()
    loss, metrics = objectives.get("rae").make_loss(model, config)(params, {"image": x}, None, 0)
    z = np.asarray(model.apply(params, x, method="encode"), np.float64)
    p = numpy_decoder(params)(z)
    xf = np.asarray(x, np.float64).reshape(len(x), -1)
    bce = -np.sum(xf * np.log(p) + (1 - xf) * np.log1p(-p), axis=-1)
    half_norm = 0.5 * np.sum(z ** 2, axis=-1)
    np.testing.assert_allclose(float(metrics["reconstruction"]), bce.mean(), rtol=1e-4)
    np.testing.assert_allclose(float(metrics["code_penalty"]), half_norm.mean(), rtol=1e-5)
    expected = bce.mean() + 0.3 * half_norm.mean() + 0.05 * float(metrics["decoder_regularizer"])
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4)


# ------------------------------------------------------ Gaussian mixture ----

def sklearn_mixture(seed=0, dim=3, components=4):
    rng = np.random.default_rng(seed)
    data = np.concatenate([rng.normal(loc=3 * rng.normal(size=dim), scale=rng.uniform(0.3, 1.5), size=(200, dim))
                           @ rng.normal(size=(dim, dim)) for _ in range(components)])
    return SklearnMixture(components, covariance_type="full", random_state=0).fit(data), data


def test_mixture_log_prob_matches_sklearn():
    fitted, data = sklearn_mixture()
    got = gaussian_mixture.log_prob(jnp.asarray(fitted.weights_), jnp.asarray(fitted.means_),
                                    jnp.asarray(fitted.covariances_), jnp.asarray(data[:50]))
    np.testing.assert_allclose(np.asarray(got), fitted.score_samples(data[:50]), rtol=1e-4, atol=1e-4)


def test_mixture_samples_have_the_mixtures_mean_and_covariance():
    fitted, _ = sklearn_mixture(seed=1)
    w, mu, cov = fitted.weights_, fitted.means_, fitted.covariances_
    n = 100_000
    z = np.asarray(gaussian_mixture.sample(jnp.asarray(w, jnp.float32), jnp.asarray(mu, jnp.float32),
                                           jnp.asarray(cov, jnp.float32), jax.random.PRNGKey(0), n), np.float64)
    mean = w @ mu
    covariance = np.einsum("k,kij->ij", w, cov + np.einsum("ki,kj->kij", mu, mu)) - np.outer(mean, mean)
    std_error = np.sqrt(np.diag(covariance) / n)
    assert np.all(np.abs(z.mean(0) - mean) < 5 * std_error), (z.mean(0), mean)
    # Var of a sample covariance entry ≈ (Σ_ii Σ_jj + Σ_ij²)/n for Gaussian-ish data; the mixture has heavier
    # tails, so a loose 6σ band.
    cov_error = np.sqrt((np.outer(np.diag(covariance), np.diag(covariance)) + covariance ** 2) / n)
    assert np.all(np.abs(np.cov(z.T) - covariance) < 6 * cov_error)
    # Components are drawn in proportion to π: the same key gives the same draws.
    again = gaussian_mixture.sample(jnp.asarray(w, jnp.float32), jnp.asarray(mu, jnp.float32),
                                    jnp.asarray(cov, jnp.float32), jax.random.PRNGKey(0), n)
    np.testing.assert_array_equal(np.asarray(again), z.astype(np.float32))


def test_fit_prior_saves_a_mixture_that_load_samples_from(tmp_path):
    import experiments.rae as experiment
    config = experiment.get_config("smoke")
    workdir = str(tmp_path / "run")
    train_and_evaluate(config, workdir)
    before = aejax.load(workdir)
    assert not before.can_sample
    with pytest.raises(NoPriorError, match=f"python -m aejax.fit_prior --workdir={workdir}$"):
        before.sample(jax.random.PRNGKey(0), 4)

    fitted = ex_post_density.fit_prior(workdir, num_components=3, max_examples=400)
    assert fitted["path"] == f"{workdir}/prior/gmm.npz" and fitted["step"] == config.num_train_steps
    model = aejax.load(workdir)
    prior = model.fitted_prior
    assert prior.num_components == 3 and prior.means.shape == (3, config.latent_dim)
    # The saved arrays score the training codes as scikit-learn's fit did.
    from aejax.evaluation.inputs import load_eval_data
    codes = np.asarray(model.code(load_eval_data(model.config, "train", 400).x), np.float64)
    saved = gaussian_mixture.log_prob(jnp.asarray(prior.weights), jnp.asarray(prior.means),
                                      jnp.asarray(prior.covariances), jnp.asarray(codes, jnp.float32))
    np.testing.assert_allclose(float(np.mean(saved)), fitted["train_log_likelihood"], rtol=1e-3, atol=1e-3)
    samples = np.asarray(model.sample(jax.random.PRNGKey(0), 5))
    assert samples.shape == (5, 8, 8, 1) and np.all((samples >= 0) & (samples <= 1))
    np.testing.assert_array_equal(samples, np.asarray(model.sample(jax.random.PRNGKey(0), 5)))
    assert not any(name.startswith(".gmm") for name in os.listdir(f"{workdir}/prior"))


def test_fit_prior_refuses_a_model_with_its_own_prior(tmp_path):
    import experiments.vae as experiment
    train_and_evaluate(experiment.get_config("smoke"), str(tmp_path))
    with pytest.raises(ConfigError, match="has its own prior"):
        ex_post_density.fit_prior(str(tmp_path), 2)


def test_bad_rae_and_gumbel_options_are_refused_in_one_line():
    import experiments.gumbel_vae as gumbel
    import experiments.rae as experiment
    config = experiment.get_config("smoke")
    config.rae_regularizer = "l1"
    with pytest.raises(ConfigError, match=r"^config.rae_regularizer='l1' is not allowed: use one of l2, gp$"):
        run_config.validate(config)
    config = gumbel.get_config("smoke")
    config.gumbel_min_temperature = 0.0
    with pytest.raises(ConfigError, match=r"^config.gumbel_min_temperature=0.0 is not allowed: use a positive number$"):
        run_config.validate(config)


def test_fit_prior_command_reports_a_missing_run_in_one_line(tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run([sys.executable, "-m", "aejax.fit_prior", f"--workdir={tmp_path}", "--components=3"],
                            cwd=repo, env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True)
    assert result.returncode == 2 and "has no checkpoints/ directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_gradient_penalty_rae_trains_with_a_falling_loss(tmp_path):
    import experiments.rae as experiment
    from aejax.training.writers import read_metrics
    config = experiment.get_config("smoke")
    config.rae_regularizer, config.rae_regularizer_weight = "gp", 0.1
    final = train_and_evaluate(config, str(tmp_path))
    losses = [r["train/loss"] for r in read_metrics(str(tmp_path)) if "train/loss" in r]
    assert losses[-1] < losses[0] and np.isfinite(final["decoder_regularizer"]) and final["decoder_regularizer"] > 0
