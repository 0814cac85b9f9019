"""Adversarial autoencoder: MLP 784-512-256-8 codes matched to the prior by a discriminator 256-256-1.

prior: gaussian (N(0, I)) or mixture (10 Gaussians on a circle in the first two dims; it balanced
with --config.discriminator_learning_rate=2e-4 --config.generator_learning_rate=2e-4, see README).
"""
from experiments import base


def get_config(size=None):
    c = base.get_config(size, model="aae")
    c.prior = "gaussian"
    c.discriminator_hidden_dims = (256, 256) if size != "smoke" else (16,)
    c.discriminator_learning_rate = 5e-5   # a weaker critic keeps the GAN balanced (README)
    c.generator_learning_rate = 5e-4
    c.binarize = "none"
    if size != "smoke":
        c.hidden_dims = (512, 256)
        c.latent_dim = 8
    return c
