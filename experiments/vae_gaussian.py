"""The VAE of vae.py on grey-level pixels with a Gaussian decoder whose variance σ² is learned.

`--config.likelihood=gaussian --config.decoder_logvar=-3` fixes σ² instead.
"""
from experiments import vae


def get_config(size=None):
    c = vae.get_config(size)
    c.likelihood = "gaussian_learned"
    c.binarize = "none"
    return c
