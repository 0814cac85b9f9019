"""Convolutional autoencoder: 4x4 stride-2 convs 32-64 (28 → 14 → 7), a 32-d code, 2x upsampling back."""
from experiments import base


def get_config(size=None):
    c = base.get_config(size, model="ae")
    c.architecture = "conv"
    c.scan_steps = False             # XLA:CPU runs convs inside lax.scan 10-30x slower (jax#12868)
    c.hidden_dims = ()                # dense layers between the convs and the code
    c.binarize = "none"
    c.latent_dim = 32 if size != "smoke" else c.latent_dim
    return c
