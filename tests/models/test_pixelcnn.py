"""The PixelCNN prior: causal masks (by brute-force Jacobian), a normalised p(k), ancestral sampling from it."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.models import pixelcnn

GRID = (4, 4)


def _model_and_params(num_codes=3, grid=GRID, layers=2):
    model = pixelcnn.GatedPixelCNN(num_codes, channels=8, num_layers=layers)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, *grid, num_codes)))
    # non-zero biases and larger weights, so no dependence hides behind a zero
    params = jax.tree_util.tree_map_with_path(
        lambda path, p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(len(str(path))), p.shape), params)
    return model, params


def test_masks_keep_the_taps_before_the_centre():
    a, b = pixelcnn.causal_mask(3, "A"), pixelcnn.causal_mask(3, "B")
    np.testing.assert_array_equal(a, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(b, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])


def test_output_at_i_depends_only_on_inputs_before_i():
    """∂ logits_i / ∂ input_j = 0 for every raster position j ≥ i (brute-force Jacobian)."""
    num_codes = 3
    model, params = _model_and_params(num_codes)
    x = jax.random.uniform(jax.random.PRNGKey(2), (1, *GRID, num_codes))
    jacobian = jax.jacobian(lambda x: model.apply(params, x))(x)          # [1, h, w, K, 1, h, w, K]
    height, width = GRID
    dependence = np.abs(np.asarray(jacobian)[0, :, :, :, 0]).sum(axis=(2, 5)).reshape(height * width, -1)
    for i in range(height * width):
        assert np.all(dependence[i, i:] == 0), f"position {i} sees inputs at {np.nonzero(dependence[i, i:])[0] + i}"
    # and it does see the past: the left neighbour and the position above, wherever the ReLU head is alive
    alive = dependence.sum(axis=1) > 0
    assert alive.sum() >= height * width // 2
    assert all(dependence[i, i - 1] > 0 for i in range(height * width) if i % width and alive[i])
    assert all(dependence[i, i - width] > 0 for i in range(width, height * width) if alive[i])


def _all_grids(num_codes, grid):
    return np.array(list(itertools.product(range(num_codes), repeat=int(np.prod(grid))))).reshape(-1, *grid)


def test_the_autoregressive_likelihood_sums_to_one_over_every_grid():
    num_codes, grid = 3, (2, 2)
    model, params = _model_and_params(num_codes, grid)
    log_p = pixelcnn.log_likelihood(model, params, jnp.asarray(_all_grids(num_codes, grid)))
    assert float(jnp.sum(jnp.exp(log_p))) == pytest.approx(1.0, abs=1e-5)


def test_ancestral_samples_follow_the_enumerated_distribution():
    num_codes, grid, n = 2, (2, 2), 4000
    model, params = _model_and_params(num_codes, grid)
    grids = _all_grids(num_codes, grid)
    p = np.exp(np.asarray(pixelcnn.log_likelihood(model, params, jnp.asarray(grids)), np.float64))
    draws = np.asarray(pixelcnn.sample(model, params, jax.random.PRNGKey(3), n, grid)).reshape(n, -1)
    index = draws @ (num_codes ** np.arange(grids[0].size)[::-1])     # the grid's row in _all_grids
    frequency = np.bincount(index, minlength=len(grids)) / n
    # within 4 standard errors of the multinomial frequency, for each of the 16 grids
    np.testing.assert_array_less(np.abs(frequency - p), 4 * np.sqrt(p * (1 - p) / n) + 1e-3)
