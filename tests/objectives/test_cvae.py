"""Conditional VAE (Sohn et al. 2015): its ELBO against numpy, and what the label does to a decoding."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import aejax
from aejax import objectives
from aejax.core.errors import ConfigError
from aejax.evaluation import inspect_run
from aejax.training.loop import train_and_evaluate
from tests.numpy_reference import dense_layers, numpy_mlp

SHAPE = (8, 8, 1)


def test_conditional_elbo_matches_numpy_with_closed_form_kl_and_bernoulli_log_likelihood(built):
    config, model, params = built("cvae", beta=1.0)
    rng = np.random.default_rng(0)
    x = (rng.random((6, *SHAPE)) < 0.4).astype(np.float32)
    labels = np.array([0, 3, 9, 3, 1, 7], np.int32)
    key = jax.random.PRNGKey(5)
    loss, metrics = objectives.get("cvae").make_loss(model, config)(
        params, {"image": jnp.asarray(x), "label": jnp.asarray(labels)}, key, 0)

    # numpy: q(z | x, y) from [flat x, onehot y]; z = μ + σ ε with the key's ε; p(x | z, y) from [z, onehot y].
    p = params["params"]
    onehot = np.eye(10)[labels]
    h = numpy_mlp(dense_layers(p["encoder"]["trunk"]["MLP_0"]), np.concatenate([x.reshape(6, -1), onehot], 1), True)
    mean = h @ np.asarray(p["encoder"]["mean"]["kernel"]) + np.asarray(p["encoder"]["mean"]["bias"])
    logvar = h @ np.asarray(p["encoder"]["logvar"]["kernel"]) + np.asarray(p["encoder"]["logvar"]["bias"])
    eps = np.asarray(jax.random.normal(key, mean.shape), np.float64)
    z = mean + np.exp(0.5 * logvar) * eps
    logits = numpy_mlp(dense_layers(p["decoder"]["MLP_0"]), np.concatenate([z, onehot], 1), False)
    xf = x.reshape(6, -1).astype(np.float64)
    log_px = np.sum(xf * -np.logaddexp(0, -logits) + (1 - xf) * -np.logaddexp(0, logits), axis=1)
    kl = np.sum(0.5 * (mean ** 2 + np.exp(logvar) - logvar - 1), axis=1)
    np.testing.assert_allclose(float(metrics["reconstruction"]), -log_px.mean(), rtol=1e-4)
    np.testing.assert_allclose(float(metrics["kl"]), kl.mean(), rtol=1e-4)
    np.testing.assert_allclose(float(metrics["elbo"]), (log_px - kl).mean(), rtol=1e-4)
    np.testing.assert_allclose(float(loss), -(log_px - kl).mean(), rtol=1e-4)


def test_the_label_changes_the_decoding_and_the_same_label_and_z_give_the_same_image(built):
    config, model, params = built("cvae")
    z = jnp.asarray(np.random.default_rng(0).normal(size=(4, config.latent_dim)), jnp.float32)
    decode = jax.jit(lambda z, y: model.apply(params, z, y, method="decode"))
    a, b = decode(z, jnp.full((4,), 2)), decode(z, jnp.full((4,), 5))
    assert np.min(np.abs(np.asarray(a) - np.asarray(b)).reshape(4, -1).max(axis=1)) > 1e-3
    np.testing.assert_array_equal(np.asarray(a), np.asarray(decode(z, jnp.full((4,), 2))))
    # The label reaches the encoder too.
    x = jnp.asarray(np.random.default_rng(1).random((4, *SHAPE)), jnp.float32)
    mean_2 = model.apply(params, x, jnp.full((4,), 2), method="encode")[0]
    mean_5 = model.apply(params, x, jnp.full((4,), 5), method="encode")[0]
    assert not np.allclose(mean_2, mean_5)


def test_cvae_trains_on_labelled_batches_samples_by_class_and_draws_a_class_grid(tmp_path):
    import experiments.cvae as experiment
    config = experiment.get_config("smoke")
    workdir = str(tmp_path)
    final = train_and_evaluate(config, workdir)
    assert np.isfinite(final["elbo"]) and {"kl", "reconstruction", "mse"} <= set(final)
    model = aejax.load(workdir)
    key = jax.random.PRNGKey(0)
    same_z = [np.asarray(model.sample(key, 3, labels=c)) for c in (1, 1, 4)]
    np.testing.assert_array_equal(same_z[0], same_z[1])
    assert not np.allclose(same_z[0], same_z[2])
    assert model.sample(key, 5).shape == (5, *SHAPE)          # classes drawn with the key
    x = np.random.default_rng(0).integers(0, 256, size=(3, *SHAPE), dtype=np.uint8)
    assert model.reconstruct(x, labels=[0, 1, 2]).shape == (3, *SHAPE)
    with pytest.raises(ConfigError, match="pass labels="):
        model.reconstruct(x)
    shown = inspect_run.inspect_run(workdir, options=inspect_run.InspectOptions(num_images=16, umap=False))
    assert {f.filename for f in shown} == {"reconstructions.png", "class_samples.png"}
    assert (tmp_path / "inspect" / "class_samples.png").exists() and (tmp_path / "inspect" / "index.html").exists()


def test_a_conv_cvae_sees_the_label_as_constant_channels(built):
    config, model, params = built("cvae", architecture="conv")
    assert params["params"]["encoder"]["trunk"]["conv_0"]["kernel"].shape[-2] == 1 + 10  # grey + a plane per class
    x = jnp.asarray(np.random.default_rng(0).random((2, *SHAPE)), jnp.float32)
    a = model.apply(params, x, jnp.asarray([1, 1]), method="encode")[0]
    b = model.apply(params, x, jnp.asarray([1, 8]), method="encode")[0]
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6)
    assert not np.allclose(a[1], b[1])
