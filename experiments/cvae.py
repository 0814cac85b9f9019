"""Conditional VAE (Sohn et al. 2015): the canonical 784-400-20 MLP VAE with the one-hot label fed to both nets.

Samples by class: python -m aejax.inspect --workdir=DIR (class_samples.png), or
aejax.load(DIR).sample(key, n, labels=...).
"""
from experiments import base


def get_config(size=None):
    c = base.get_config(size, model="cvae")
    c.beta = 1.0
    return c
