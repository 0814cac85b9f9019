"""config.param_init: flax's draw unchanged by default; PyTorch's uniform(±1/√fan_in) on request."""
import math

import jax
import numpy as np
import pytest

from aejax import objectives
from aejax.core.optim import make_optimizer
from aejax.training.state import create_train_state
from experiments import conv_vae, vae


def _params(config):
    config.image_shape = (28, 28, 1)  # Fashion-MNIST's, without loading it
    variant = objectives.get(config.model)
    model = variant.build_model(config, tuple(config.image_shape))
    state = create_train_state(config, variant, model, make_optimizer(config, 10), jax.random.PRNGKey(0))
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(state.params)}


def test_the_default_is_flax_own_draw():
    config = vae.get_config("smoke")
    default = _params(config)
    config.param_init = "flax"
    assert all(np.array_equal(default[k], v) for k, v in _params(config).items())
    biases = [v for k, v in default.items() if k.endswith("['bias']")]
    assert biases and all(not b.any() for b in biases)  # flax: zero biases


@pytest.mark.parametrize("get_config", [vae.get_config, conv_vae.get_config])
def test_torch_draws_kernels_and_biases_uniform_within_one_over_root_fan_in(get_config):
    config = get_config()
    config.param_init = "torch"
    params = _params(config)
    kernels = {k[:-len("['kernel']")]: v for k, v in params.items() if k.endswith("['kernel']")}
    assert kernels
    for module, kernel in kernels.items():
        fan_in = int(np.prod(kernel.shape[:-1]))  # dense [in, out]; conv [h, w, in, out]
        bound = 1 / math.sqrt(fan_in)
        assert np.abs(kernel).max() <= bound
        if kernel.size >= 4000:  # enough draws for the moments: uniform(±b) has variance b²/3, |x| mean b/2
            assert abs(kernel.var() / (bound**2 / 3) - 1) < 0.1, module
            assert abs(np.abs(kernel).mean() / (bound / 2) - 1) < 0.1, module
        bias = params.get(module + "['bias']")
        if bias is not None:
            assert np.abs(bias).max() <= bound and bias.any(), module
    # Different modules get different draws.
    flat = [k.ravel()[:16] for k in kernels.values() if k.size >= 16]
    assert len({tuple(np.round(f, 6)) for f in flat}) == len(flat)


@pytest.mark.parametrize("get_config", [vae.get_config, conv_vae.get_config])
def test_keras_draws_glorot_uniform_kernels_and_zero_biases(get_config):
    config = get_config()
    config.param_init = "keras"
    params = _params(config)
    kernels = {k[:-len("['kernel']")]: v for k, v in params.items() if k.endswith("['kernel']")}
    assert kernels
    for module, kernel in kernels.items():
        receptive = int(np.prod(kernel.shape[:-2]))  # Keras: fan_in = kh·kw·in, fan_out = kh·kw·out
        bound = math.sqrt(6 / (receptive * kernel.shape[-2] + receptive * kernel.shape[-1]))
        assert np.abs(kernel).max() <= bound
        if kernel.size >= 4000:
            assert abs(kernel.var() / (bound**2 / 3) - 1) < 0.1, module
        bias = params.get(module + "['bias']")
        if bias is not None:
            assert not bias.any(), module
