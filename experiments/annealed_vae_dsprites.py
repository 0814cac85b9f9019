"""Annealed VAE on dSprites (Burgess et al. 2018): the β-VAE study's model, recon + γ·|KL − C_t|.

Not experiments/vae_annealed.py (a KL *weight* warm-up on Fashion-MNIST): here the KL
*target* C_t rises linearly from 0 to C_max = 25 nats (Burgess et al.'s dSprites value)
with γ = 1000. Same VAE, data, optimiser and budget as experiments/beta_vae_dsprites.py
(β is not read). The paper's ramp takes 100,000 of 300,000 steps (disentanglement_lib);
at this 4,000-step budget C rises over the first 3,000 and holds for the last 1,000.
disentanglement_lib sweeps C_max ∈ {5, 10, 25, 50, 75, 100}:

    ./launch.sh experiments/annealed_vae_dsprites.py runs/dsprites_annealed capacity_max=5,10,25,50,75,100 seed=0,1,2
"""
from experiments import beta_vae_dsprites


def get_config(size=None):
    c = beta_vae_dsprites.get_config(size, model="annealed_vae")
    del c.beta  # set by the β-VAE study; the annealed VAE does not read it
    c.capacity_gamma = 1000.0
    c.capacity_max = 25.0
    c.capacity_steps = c.num_train_steps * 3 // 4  # smoke: 15 of 20 steps
    return c
