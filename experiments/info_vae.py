"""InfoVAE (Zhao et al. 2019) with the MMD divergence: the VAE of vae.py plus (α + λ − 1)·MMD²(q(z), p(z)).

α = 0 keeps the ELBO's per-image KL at weight 1; λ = 1000 weighs the RBF-kernel MMD
(exp(−‖z − z'‖²/D)) at 999, the scale of the per-image reconstruction nats. α = 1
(`--config.info_alpha=1`) drops the per-image KL: the MMD-VAE of Zhao et al.'s code.
"""
from experiments import base


def get_config(size=None):
    c = base.get_config(size, model="info_vae")
    c.info_alpha = 0.0
    c.info_lambda = 1000.0
    return c
