"""Annealed VAE (Burgess et al. 2018): the capacity schedule and the loss by hand, also with per-member traced values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.objectives import capacity
from aejax.training.population import MemberConfig


def schedule_config(c_max, ramp_steps):
    return type("C", (), {"capacity_max": c_max, "capacity_steps": ramp_steps})()


@pytest.mark.parametrize("step,expected", [(0, 0.0), (1, 0.25), (40, 10.0), (99, 24.75), (100, 25.0), (5000, 25.0)])
def test_capacity_rises_linearly_then_holds(step, expected):
    assert float(capacity.capacity(schedule_config(25.0, 100), step)) == pytest.approx(expected)


def test_no_ramp_holds_c_max_from_the_start():
    assert float(capacity.capacity(schedule_config(7.5, 0), 0)) == 7.5


def test_schedule_takes_traced_per_member_values():
    # A population passes C_max and the ramp length as traced numbers: no Python branch may read them.
    schedule = jax.jit(jax.vmap(lambda c, n, t: capacity.capacity(schedule_config(c, n), t)))
    got = schedule(jnp.array([25.0, 10.0, 5.0]), jnp.array([100, 0, 10]), jnp.array([50, 50, 50]))
    np.testing.assert_allclose(got, [12.5, 10.0, 5.0])


def hand_loss(model, params, x, key, gamma, target):
    mean, logvar = (np.asarray(a, np.float64) for a in model.apply(params, x, method="encode"))
    z = mean + np.exp(0.5 * logvar) * np.asarray(jax.random.normal(key, mean.shape))
    logits = np.asarray(model.apply(params, jnp.asarray(z, jnp.float32), method="decode"), np.float64)
    xs = np.asarray(x, np.float64)
    reconstruction = -np.sum(xs * logits - np.logaddexp(0, logits), axis=(1, 2, 3)).mean()
    kl = 0.5 * np.sum(mean ** 2 + np.exp(logvar) - logvar - 1, axis=-1).mean()
    return reconstruction + gamma * abs(kl - target), kl


def test_loss_by_hand_below_and_above_the_target(built):
    config, model, params = built("annealed_vae_dsprites", capacity_gamma=30.0, capacity_steps=10)
    x = jax.random.bernoulli(jax.random.PRNGKey(5), 0.4, (6, 8, 8, 1)).astype(jnp.float32)
    key = jax.random.PRNGKey(7)
    _, kl = hand_loss(model, params, x, key, 30.0, 0.0)
    config.capacity_max = 2 * kl  # the target passes the KL half-way up the ramp: both sides of |·|
    loss_fn = capacity.make_annealed_vae_loss(model, config)
    for step in (0, 3, 7, 10, 50):
        target = 2 * kl * min(1.0, step / 10)
        loss, metrics = loss_fn(params, {"image": x}, key, step)
        expected, _ = hand_loss(model, params, x, key, 30.0, target)
        np.testing.assert_allclose(float(metrics["capacity"]), target, rtol=1e-5)
        np.testing.assert_allclose(float(loss), expected, rtol=1e-4)


def test_loss_vmapped_over_members_matches_each_member(built):
    config, model, params = built("annealed_vae_dsprites", capacity_steps=10)
    x = jax.random.bernoulli(jax.random.PRNGKey(5), 0.4, (6, 8, 8, 1)).astype(jnp.float32)
    key = jax.random.PRNGKey(7)
    gammas, c_maxes = jnp.array([1.0, 100.0, 1000.0]), jnp.array([0.0, 2.0, 50.0])

    def member_loss(gamma, c_max):
        member = MemberConfig(config, {"capacity_gamma": gamma, "capacity_max": c_max})
        return capacity.make_annealed_vae_loss(model, member)(params, {"image": x}, key, 5)[0]

    got = jax.jit(jax.vmap(member_loss))(gammas, c_maxes)
    expected = [hand_loss(model, params, x, key, float(g), float(c) * 0.5)[0] for g, c in zip(gammas, c_maxes)]
    np.testing.assert_allclose(got, expected, rtol=1e-4)
