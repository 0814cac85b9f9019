"""The "conv" architecture: any image size in and out, and the 64x64 layout of Burgess et al. (2018)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.models.conv import feature_map_sizes


def test_feature_map_sizes_halve_rounding_up():
    assert feature_map_sizes(28, 28, 2) == [(28, 28), (14, 14), (7, 7)]
    assert feature_map_sizes(28, 28, 3)[-1] == (4, 4)
    assert feature_map_sizes(64, 64, 4) == [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4)]
    assert feature_map_sizes(8, 8, 3) == [(8, 8), (4, 4), (2, 2), (1, 1)]


@pytest.mark.parametrize("shape, channels", [((28, 28, 1), (32, 64)), ((28, 28, 1), (8, 8, 8)),
                                             ((64, 64, 3), (8, 8, 8, 8)), ((8, 8, 1), (8, 16))])
def test_conv_autoencoder_maps_images_to_images_of_the_same_shape(built, shape, channels):
    config, model, params = built("conv_ae", shape=shape, conv_channels=channels, latent_dim=5)
    x = jnp.asarray(np.random.default_rng(0).random((3, *shape)), jnp.float32)
    out, code = model.apply(params, x)
    assert out.shape == (3, *shape) and code.shape == (3, 5)
    kernels = [params["params"]["encoder"]["ConvTrunk_0"][f"conv_{i}"]["kernel"].shape
               for i in range(len(channels))]
    assert kernels == [(4, 4, c_in, c_out) for c_in, c_out in zip((shape[-1], *channels), channels)]


def test_burgess_64x64_layout(built):
    """4 convs 32 channels 4x4 stride 2, dense 256, 256 → latent; the decoder mirrors it."""
    config, model, params = built("conv_vae", shape=(64, 64, 1), conv_channels=(32, 32, 32, 32),
                                  hidden_dims=(256, 256), latent_dim=10)
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
