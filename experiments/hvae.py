"""Two-stochastic-layer VAE, the IWAE paper's architecture (Burda et al. 2016), trained on the ELBO.

x → 200-200 (tanh) → z1 (100) → 100-100 → z2 (50); the generative path mirrors it.
`iw_train_samples=K` trains on the K-sample IW bound instead. Compare with the
one-layer experiments/vae.py under the same budget and evaluation command.
"""
from experiments import base


def get_config(size=None):
    c = base.get_config(size, model="hvae")
    c.activation = "tanh"
    if size == "smoke":
        c.latent_dim, c.latent_dim_2, c.hidden_dims_2 = 4, 2, (16,)
    else:
        c.hidden_dims, c.latent_dim = (200, 200), 100
        c.latent_dim_2, c.hidden_dims_2 = 50, (100, 100)
    return c
