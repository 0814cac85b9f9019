"""IAF VAE (Kingma et al. 2016): the canonical 784-400-20 VAE with q(z | x) refined by 2 IAF steps.

Each step a MADE with two hidden layers of 320 (`made_hidden_dims`) fed the
encoder's 400 features as context; `num_flows` sets T. ':smoke' uses one small step pair.
"""
from experiments import base


def get_config(size=None):
    c = base.get_config(size, model="iaf_vae")
    c.num_flows = 2
    c.made_hidden_dims = (16, 16) if size == "smoke" else (320, 320)
    return c
