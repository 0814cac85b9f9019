"""DIP-VAE on dSprites (Kumar et al. 2018): the β-VAE study's model, ELBO + the covariance penalty of q(z).

Same VAE, data, optimiser and budget as experiments/beta_vae_dsprites.py (β is not
read: the KL keeps weight 1). DIP-VAE-I with λ_od = 10, λ_d = 10·λ_od = 100 (the
paper's ratio for type I; disentanglement_lib sweeps λ_od ∈ {1, 2, 5, 10, 20, 50}).
Type II (`--config.dip_type=ii`) takes λ_d = λ_od in the paper. The penalty is a
D x D covariance of the batch's means: the step costs what the β-VAE's does.

    ./launch.sh experiments/dip_vae_dsprites.py runs/dsprites_dip_i dip_lambda_od=1,2,5,10,20,50 seed=0,1,2
    # λ_d follows λ_od only if set with it, e.g. one launch per pair: dip_lambda_od=5 dip_lambda_d=50
"""
from experiments import beta_vae_dsprites


def get_config(size=None):
    c = beta_vae_dsprites.get_config(size, model="dip_vae")
    del c.beta  # set by the β-VAE study; DIP-VAE does not read it
    c.dip_type = "i"
    c.dip_lambda_od = 10.0
    c.dip_lambda_d = 100.0
    return c
