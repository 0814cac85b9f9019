"""Regularised autoencoder (Ghosh et al. 2020): MLP 784-512-256-16, ½‖z‖² on the codes, a decoder regulariser.

rae_regularizer: "l2" (decoder weight decay, λ=1e-3) or "gp" (‖∇_z D(z)‖², e.g.
--config.rae_regularizer=gp --config.rae_regularizer_weight=0.1). Sampling needs the
ex-post prior: python -m aejax.fit_prior --workdir=DIR --components=10 after training.
"""
from experiments import base


def get_config(size=None):
    c = base.get_config(size, model="rae")
    c.rae_regularizer = "l2"
    c.rae_code_weight = 1.0
    c.rae_regularizer_weight = 1e-3
    c.binarize = "none"
    if size != "smoke":
        c.hidden_dims = (512, 256)
        c.latent_dim = 16
    return c
