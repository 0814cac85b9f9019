"""Importance-weighted autoencoder (Burda et al. 2016): the VAE of vae.py trained on the K = 5 bound."""
from experiments import vae


def get_config(size=None):
    c = vae.get_config(size)
    c.model = "iwae"
    c.num_importance_samples = 5
    return c
