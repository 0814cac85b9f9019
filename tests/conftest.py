"""Test set-up: CPU, fast compiles, the repo root importable (for experiments/)."""
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

# Tiny configs spend most of their time compiling; optimisation buys nothing there.
jax.config.update("jax_disable_most_optimizations", True)

import importlib  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import pytest  # noqa: E402

from aejax import objectives  # noqa: E402


def _with(config, **changes):
    config = config.copy_and_resolve_references()
    config.update(changes)
    return config


def _built(name, shape=(8, 8, 1), **overrides):
    """(config, model, params) of experiments/<name>.py at smoke size, for `shape` images.

    Biases are drawn non-zero, so no term of a loss hides behind a symmetric
    initialisation.
    """
    config = _with(importlib.import_module(f"experiments.{name}").get_config("smoke"),
                   image_shape=shape, **overrides)
    variant = objectives.get(config.model)
    model = variant.build_model(config, shape)
    inputs = variant.init_inputs(config, jnp.zeros((2, *shape)), jax.random.PRNGKey(1))
    params = model.init(jax.random.PRNGKey(0), *inputs)
    params = jax.tree_util.tree_map_with_path(
        lambda path, p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(len(str(path))), p.shape)
        if "bias" in jax.tree_util.keystr(path) else p, params)
    return config, model, params


@pytest.fixture
def built():
    """built(name, shape=(8, 8, 1), **overrides) -> (config, model, params) of an experiment."""
    return _built


@pytest.fixture
def with_changes():
    """with_changes(config, **changes) -> a changed copy of config."""
    return _with


import contextlib  # noqa: E402
import subprocess  # noqa: E402


@contextlib.contextmanager
def _small_filesystem(path, size_kb: int, read_only: bool = False):
    """A real tmpfs of `size_kb` mounted at `path` (faults like a full or read-only disk, for real).

    Needs root (CI runs as root); skips with the reason where mounting is not allowed.
    `mount -o remount,ro PATH` makes it read-only after files were put there.
    """
    os.makedirs(path, exist_ok=True)
    options = f"size={size_kb}k" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a {size_kb} KB tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield str(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def small_filesystem():
    """small_filesystem(path, size_kb, read_only=False): a context manager mounting a real tmpfs."""
    return _small_filesystem
