"""Convolutional VAE: 4x4 stride-2 convs 32-64, dense 256, a 20-d Gaussian code; mirrored decoder.

For 64x64 images (dSprites) use the layout of Burgess et al. (2018):
--config.conv_channels='(32, 32, 32, 32)' --config.hidden_dims='(256, 256)' --config.latent_dim=10
(and --config.conv_upsample=transpose for the paper's transposed convs).
"""
from experiments import base


def get_config(size=None):
    c = base.get_config(size)
    c.model = "vae"
    c.architecture = "conv"
    c.scan_steps = False             # XLA:CPU runs convs inside lax.scan 10-30x slower (jax#12868)
    if size != "smoke":
        c.hidden_dims = (256,)
    return c
