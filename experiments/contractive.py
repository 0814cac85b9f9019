"""Contractive autoencoder: one sigmoid hidden layer of 256, penalty λ·‖J_f(x)‖²_F.

jacobian_method: jacfwd (default, exact), jacrev (exact) or closed_form (exact for
this one-sigmoid-layer encoder, and much cheaper).
"""
from experiments import base


def get_config(size=None):
    c = base.get_config(size, model="contractive")
    c.hidden_dims = ()                # the code is the single sigmoid hidden layer
    c.latent_dim = 256 if size != "smoke" else 16
    c.code_activation = "sigmoid"
    c.contractive_weight = 0.1        # λ
    c.jacobian_method = "jacfwd"      # jacfwd | jacrev | closed_form
    c.binarize = "none"
    return c
