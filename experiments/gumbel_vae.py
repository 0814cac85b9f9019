"""Categorical VAE with the Gumbel-softmax relaxation (Jang et al. 2017): 30 × 10-way latents, MLP 784-512-256.

τ_t = max(0.5, 1.0·exp(−1e-4·t)) as in the paper's MNIST runs (continuous rather than
every 500 steps). The eval `elbo` decodes exact one-hot samples (a true bound).
"""
from experiments import base


def get_config(size=None):
    c = base.get_config(size, model="gumbel_vae")
    c.num_categorical = 30
    c.num_categories = 10
    c.gumbel_temperature = 1.0
    c.gumbel_min_temperature = 0.5
    c.gumbel_anneal_rate = 1e-4
    if size == "smoke":
        c.num_categorical, c.num_categories = 4, 3
        c.gumbel_anneal_rate = 0.05
    else:
        c.hidden_dims = (512, 256)
    return c
