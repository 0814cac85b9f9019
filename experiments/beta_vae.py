"""β-VAE (Higgins et al. 2017): the VAE with the KL term weighted by β > 1.

The default job of the README: 784-400-10 MLP on Fashion-MNIST, β = 4,
20 epochs (9,360 steps: 1 min 16 s – 1 min 23 s on 2 shared CPU cores, as
measured in the README). Sweep β with launch.sh.
"""
from experiments import base


def get_config(size=None):
    c = base.get_config(size)
    c.model = "vae"
    c.beta = 4.0
    c.latent_dim = 10 if size != "smoke" else c.latent_dim
    return c
