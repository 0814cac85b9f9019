"""VQ-VAE on Fashion-MNIST: 4x4 stride-2 convs 32-64 to a 7x7 grid of 16-d vectors, 128 codes, EMA codebook.

Then a PixelCNN prior over the 7x7 code grids makes it sample:
    python -m aejax.main --config=experiments/vq_vae.py --workdir=DIR
    python -m aejax.prior --workdir=DIR
codebook_loss="loss" trains the codebook by the ‖sg[z_e] − e‖² term instead of moving averages.
"""
from experiments import base


def get_config(size=None):
    c = base.get_config(size, model="vq_vae")
    c.architecture = "conv"
    c.scan_steps = False             # XLA:CPU runs convs inside lax.scan 10-30x slower (jax#12868)
    c.binarize = "none"              # grey levels; the Bernoulli likelihood is then a cross-entropy
    c.codebook_loss = "ema"
    c.commitment_weight = 0.25
    c.ema_decay = 0.99
    if size == "smoke":
        c.num_codes = 16
        c.latent_dim = 4
    else:
        c.num_codes = 128
        c.latent_dim = 16
        c.conv_channels = (32, 64)
    return c
