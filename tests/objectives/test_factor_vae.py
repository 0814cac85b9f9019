"""FactorVAE: permuted dimensions, the two players' gradients, their two optimisers."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from aejax.objectives import factor_vae
from experiments import vae


def test_permute_dims_shuffles_each_dimension_on_its_own():
    b, d = 512, 4
    column = np.random.default_rng(0).normal(size=b).astype(np.float32)
    z = np.repeat(column[:, None], d, axis=1) + np.arange(d, dtype=np.float32)  # perfectly dependent columns
    permuted = np.asarray(factor_vae.permute_dims(jax.random.PRNGKey(0), jnp.asarray(z)))
    for k in range(d):  # every marginal kept exactly: a permutation of its own column
        np.testing.assert_array_equal(np.sort(permuted[:, k]), np.sort(z[:, k]))
        assert not np.array_equal(permuted[:, k], z[:, k])
    orders = [np.argsort(np.argsort(permuted[:, k])) for k in range(d)]
    assert all(not np.array_equal(orders[0], o) for o in orders[1:])  # independent permutations
    correlation = np.corrcoef(permuted.T)[np.triu_indices(d, 1)]
    assert np.abs(correlation).max() < 0.2  # the dependence (correlation 1) is gone


@pytest.fixture(scope="module")
def tiny():
    config = vae.get_config("smoke")
    config.model, config.image_shape = "factor_vae", (8, 8, 1)
    config.hidden_dims, config.latent_dim, config.discriminator_hidden_dims = (16,), 3, (8,)
    config.tc_weight, config.learning_rate, config.discriminator_learning_rate = 7.0, 1e-3, 1e-2
    model = factor_vae.build_factor_vae(config, config.image_shape)
    x = (jax.random.uniform(jax.random.PRNGKey(1), (6, 8, 8, 1)) > 0.5).astype(jnp.float32)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), x, jax.random.PRNGKey(2))
    return config, model, params, x


def test_each_player_gets_the_gradient_of_its_own_loss(tiny):
    config, model, params, x = tiny
    key = jax.random.PRNGKey(3)
    loss_fn = factor_vae.make_factor_vae_loss(model, ml_collections.ConfigDict(config))
    grads = jax.jit(jax.grad(lambda p: loss_fn(p, {"image": x}, key, 0)[0]))(params)["params"]
    sample_key, permute_key = jax.random.split(key)
    vae_params, d_params = params["params"]["vae"], params["params"]["discriminator"]

    def codes(vae_p):
        mean, logvar = model.apply({"params": {**params["params"], "vae": vae_p}}, x, method="encode")
        z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(sample_key, mean.shape)
        return mean, logvar, z

    def logits(d_p, z):
        return model.apply({"params": {**params["params"], "discriminator": d_p}}, z, method="discriminate")

    def vae_loss(vae_p):  # −ELBO + γ·TC with the discriminator held fixed, by hand
        mean, logvar, z = codes(vae_p)
        out = model.apply({"params": {**params["params"], "vae": vae_p}}, z, method="decode")
        bce = jnp.sum(jnp.logaddexp(0.0, out) - x * out, axis=(1, 2, 3))
        kl = 0.5 * jnp.sum(mean**2 + jnp.exp(logvar) - logvar - 1, axis=-1)
        l = logits(d_params, z)
        return jnp.mean(bce + kl) + config.tc_weight * jnp.mean(l[:, 0] - l[:, 1])

    def d_loss(d_p):  # cross-entropy of q(z) samples as class 0, permuted ones as class 1, z fixed
        z = codes(vae_params)[2]
        log_p = jax.nn.log_softmax(logits(d_p, jnp.concatenate([z, factor_vae.permute_dims(permute_key, z)])))
        n = len(z)
        return -0.5 * (jnp.mean(log_p[:n, 0]) + jnp.mean(log_p[n:, 1]))

    for got, want in ((grads["vae"], jax.jit(jax.grad(vae_loss))(vae_params)),
                      (grads["discriminator"], jax.jit(jax.grad(d_loss))(d_params))):
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)


def test_each_player_has_its_own_optimiser(tiny):
    config, _, params, _ = tiny
    optimizer = factor_vae.make_factor_vae_optimizer(config, total_steps=10)
    grads = jax.tree_util.tree_map(lambda p: jnp.ones_like(p) * 0.3, params)
    updates, _ = jax.jit(optimizer.update)(grads, jax.jit(optimizer.init)(params), params)
    # Adam's first step is −lr·g/(|g| + ε) ≈ −lr: each subtree moves by its own learning rate.
    for name, lr in (("vae", config.learning_rate), ("discriminator", config.discriminator_learning_rate)):
        for u in jax.tree_util.tree_leaves(updates["params"][name]):
            np.testing.assert_allclose(u, -lr, rtol=1e-5)
