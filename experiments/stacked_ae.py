"""Stacked autoencoder: the deep symmetric MLP 784-512-256-32-256-512-784.

`tied_weights=True` makes the decoder use the transposed encoder kernels (with
its own biases). Grey-level pixels with the Bernoulli cross-entropy.
"""
from experiments import base


def get_config(size=None):
    c = base.get_config(size, model="stacked_ae")
    c.tied_weights = False
    c.binarize = "none"
    if size != "smoke":
        c.hidden_dims = (512, 256)
        c.latent_dim = 32
    return c
