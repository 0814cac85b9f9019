"""The canonical VAE: 784-400-20 MLP, Bernoulli likelihood, Adam 1e-3, batch 128."""
from experiments import base


def get_config(size=None):
    c = base.get_config(size)
    c.model = "vae"
    c.beta = 1.0
    return c
