"""β-TCVAE on dSprites (Chen et al. 2018): the β-VAE study's model with only the TC term weighted.

Same model, data, optimiser and budget as experiments/beta_vae_dsprites.py; loss =
recon + MI + β·TC + dim-KL (α = γ = 1), minibatch stratified sampling estimator of
q(z) with N = 737,280 (the step costs about what the β-VAE's does). β = 6 by
default; sweep it like the β-VAE:

    ./launch.sh experiments/tcvae_dsprites.py runs/dsprites_tcvae beta=1,2,4,6,8,16 seed=0,1,2
"""
from experiments import beta_vae_dsprites


def get_config(size=None):
    c = beta_vae_dsprites.get_config(size, model="tcvae")  # mi_weight = dim_kl_weight = 1, tc_estimator mss
    c.beta = 6.0
    return c
