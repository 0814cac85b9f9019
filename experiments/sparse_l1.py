"""Sparse autoencoder with an L1 penalty λ·Σ_j|a_j| on an overcomplete ReLU code (1000 units)."""
from experiments import base


def get_config(size=None):
    c = base.get_config(size, model="sparse_l1")
    c.hidden_dims = ()                # the code is the single (overcomplete) hidden layer
    c.latent_dim = 1000 if size != "smoke" else 100
    c.code_activation = "relu"
    c.sparsity_weight = 0.2           # λ, nats per unit of Σ|a| (README: 0.01, 0.05, 0.2 compared)
    c.sparsity_target = 0.05          # ρ: used by sparse_kl only
    c.active_threshold = 0.0          # a unit is active when a > 0
    c.binarize = "none"
    return c
