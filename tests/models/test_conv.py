"""The "conv" architecture: any image size in and out, and the 64x64 layout of Burgess et al. (2018)."""
import flax.linen as nn
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.models.conv import SubPixelUpsample, depth_to_space, feature_map_sizes


def test_feature_map_sizes_halve_rounding_up():
    assert feature_map_sizes(28, 28, 2) == [(28, 28), (14, 14), (7, 7)]
    assert feature_map_sizes(28, 28, 3)[-1] == (4, 4)
    assert feature_map_sizes(64, 64, 4) == [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4)]
    assert feature_map_sizes(8, 8, 3) == [(8, 8), (4, 4), (2, 2), (1, 1)]


@pytest.mark.parametrize("shape, channels, upsample", [
    ((28, 28, 1), (32, 64), "subpixel"), ((28, 28, 1), (8, 8, 8), "subpixel"),
    ((28, 28, 1), (8, 8, 8), "transpose"), ((64, 64, 3), (8, 8, 8, 8), "subpixel"),
    ((8, 8, 1), (8, 16), "subpixel")])
def test_conv_autoencoder_maps_images_to_images_of_the_same_shape(built, shape, channels, upsample):
    config, model, params = built("conv_ae", shape=shape, conv_channels=channels, latent_dim=5,
                                  conv_upsample=upsample)
    x = jnp.asarray(np.random.default_rng(0).random((3, *shape)), jnp.float32)
    out, code = model.apply(params, x)
    assert out.shape == (3, *shape) and code.shape == (3, 5)
    kernels = [params["params"]["encoder"]["ConvTrunk_0"][f"conv_{i}"]["kernel"].shape
               for i in range(len(channels))]
    assert kernels == [(4, 4, c_in, c_out) for c_in, c_out in zip((shape[-1], *channels), channels)]


def test_burgess_64x64_layout(built):
    """4 convs 32 channels 4x4 stride 2, dense 256, 256 → latent; the decoder mirrors it."""
    config, model, params = built("conv_vae", shape=(64, 64, 1), conv_channels=(32, 32, 32, 32),
                                  hidden_dims=(256, 256), latent_dim=10, conv_upsample="transpose")
    shapes = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(params)}
    conv = 4 * 4 * 1 * 32 + 32 + 3 * (4 * 4 * 32 * 32 + 32)
    encoder = conv + (512 * 256 + 256) + (256 * 256 + 256) + 2 * (256 * 10 + 10)
    decoder = (10 * 256 + 256) + (256 * 256 + 256) + (256 * 512 + 512) + 3 * (4 * 4 * 32 * 32 + 32) \
        + (4 * 4 * 32 * 1 + 1)
    assert sum(int(np.prod(s)) for s in shapes.values()) == encoder + decoder
    # After four stride-2 convs a 64x64 image is 4x4x32 = 512 features.
    assert any(s == (512, 256) for k, s in shapes.items() if "encoder" in k)
    x = jnp.zeros((2, 64, 64, 1))
    mean, logvar = model.apply(params, x, method="encode")
    assert mean.shape == logvar.shape == (2, 10)
    assert model.apply(params, mean, method="decode").shape == (2, 64, 64, 1)


def test_depth_to_space_places_channel_groups_as_pixels():
    h = np.arange(2 * 3 * 5 * 8).reshape(2, 3, 5, 8)
    out = np.asarray(depth_to_space(jnp.asarray(h)))
    assert out.shape == (2, 6, 10, 2)
    for a in range(2):
        for b in range(2):
            np.testing.assert_array_equal(out[:, a::2, b::2, :], h[..., (2 * a + b) * 2:(2 * a + b + 1) * 2])


@pytest.mark.parametrize("subpixel_kernel, fits", [(3, True), (1, False)])
def test_subpixel_conv_contains_the_stride_2_transposed_conv(subpixel_kernel, fits):
    """Least squares over the sub-pixel conv's weights reproduces a random 4x4 transposed conv
    exactly with a 3x3 kernel (and cannot with 1x1, which sees too small a window)."""
    h = jax.random.normal(jax.random.PRNGKey(0), (6, 5, 5, 2))
    transposed = nn.ConvTranspose(1, (4, 4), strides=(2, 2), padding="SAME")
    t_params = transposed.init(jax.random.PRNGKey(1), h)
    t_params = jax.tree_util.tree_map(lambda p: p + jax.random.normal(jax.random.PRNGKey(2), p.shape), t_params)
    target = np.asarray(transposed.apply(t_params, h), np.float64).ravel()

    subpixel = SubPixelUpsample(1, subpixel_kernel)
    s_params = subpixel.init(jax.random.PRNGKey(3), h)
    flat, unravel = jax.flatten_util.ravel_pytree(s_params)
    # The output is linear in the weights: one column per basis weight vector.
    columns = jax.vmap(lambda w: subpixel.apply(unravel(w), h).ravel())(jnp.eye(flat.size))
    design = np.asarray(columns, np.float64).T
    weights, *_ = np.linalg.lstsq(design, target, rcond=None)
    relative_residual = np.linalg.norm(design @ weights - target) / np.linalg.norm(target)
    assert (relative_residual < 1e-5) == fits, relative_residual
