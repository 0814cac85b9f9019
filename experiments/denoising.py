"""Denoising autoencoder: MLP 784-512-256-64, inputs corrupted (config.corruption), clean targets.

Corruptions: gaussian (noise_std), masking and salt_and_pepper (corruption_prob).
"""
from experiments import base


def get_config(size=None):
    c = base.get_config(size, model="denoising")
    c.corruption = "gaussian"         # gaussian | masking | salt_and_pepper
    c.noise_std = 0.3
    c.corruption_prob = 0.3
    c.binarize = "none"
    if size != "smoke":
        c.hidden_dims = (512, 256)
        c.latent_dim = 64
    return c
