"""VampPrior VAE (Tomczak & Welling 2018): the canonical 784-400-20 VAE with p(z) a mixture of q(z | u_k).

K = 500 pseudo-inputs as in the paper (`num_pseudo_inputs`); the paper also warms
the KL up over 100 epochs (`kl_warmup_steps`), off here. The ':smoke' size uses 8.
"""
from experiments import base


def get_config(size=None):
    c = base.get_config(size, model="vamp_prior")
    c.num_pseudo_inputs = 8 if size == "smoke" else 500
    return c
