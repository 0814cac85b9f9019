"""Sparse autoencoder with the KL sparsity penalty λ·Σ_j KL(ρ ‖ ρ̂_j) on an overcomplete sigmoid code."""
from experiments import sparse_l1


def get_config(size=None):
    c = sparse_l1.get_config(size)
    c.model = "sparse_kl"
    c.code_activation = "sigmoid"
    c.sparsity_weight = 1.0           # λ, nats per nat of KL
    c.sparsity_target = 0.05          # ρ, the target mean activation
    c.active_threshold = 0.5          # a unit is active when a > 0.5
    return c
