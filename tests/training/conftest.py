"""Shared by the training tests: the smoke VAE config with short intervals, and exact comparison of params."""
import jax
import numpy as np
import pytest

from experiments import vae

STEPS = dict(log_every_steps=5, eval_every_steps=10, checkpoint_every_steps=10)


def _smoke(**overrides):
    config = vae.get_config("smoke")
    for key, value in {**STEPS, **overrides}.items():
        config[key] = value
    return config


def _assert_same_tree(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="session")
def smoke():
    """smoke(**overrides): experiments/vae.py:smoke, logging every 5 steps, eval and checkpoint every 10."""
    return _smoke


@pytest.fixture(scope="session")
def assert_same_tree():
    """assert_same_tree(a, b): every leaf bit-for-bit equal."""
    return _assert_same_tree
