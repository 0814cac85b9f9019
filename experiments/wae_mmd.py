"""WAE-MMD (Tolstikhin et al. 2018): MLP 784-400-8 deterministic codes, IMQ-kernel MMD to N(0, I), λ = 10.

The paper's MNIST choices where they carry over: 8 latent dims, λ = 10, squared-error
cost ‖x − x̂‖² (on the sigmoid decoder mean), IMQ scales C = 2·8·s, s ∈ {0.1, …, 10},
Adam 1e-3, batch 100; grey (non-binarised) pixels. The MLP of vae.py, not the paper's convs.
"""
from experiments import base


def get_config(size=None):
    c = base.get_config(size, model="wae_mmd")
    c.wae_lambda = 10.0
    c.wae_cost = "squared_error"
    c.binarize = "none"
    if size != "smoke":
        c.latent_dim = 8
        c.batch_size = 100
    return c
