"""β-VAE on dSprites at Locatello et al.'s (2019) settings: the study as the literature runs it (an accelerator's job).

disentanglement_lib's model and optimiser (checked in its released code and gin configs):
conv encoder 32-32-64-64 channels, 4x4 kernels, stride 2, then dense 256 and the
Gaussian head; a mirrored decoder with transposed convs; Bernoulli likelihood on the
binary images; 10 latent dims; Adam 1e-4; batch 64; 300,000 steps; β ∈ {1, 2, 4, 6, 8, 16}.
Checkpoint and evaluate at the end only. One population trains the whole grid:

    ./launch.sh experiments/beta_vae_dsprites_locatello.py runs/locatello beta=1,2,4,6,8,16 seed=0,1,2 \\
        --population -- --num_importance_samples=1 --noclustering

(scripts/accelerator_study.sh runs this and the bench on a GPU). On 2 CPU cores a step of
this conv model costs ~0.16 s (the 4,000-step CPU study uses Higgins et al.'s MLP instead).
"""
from experiments import beta_vae_dsprites

NUM_TRAIN_STEPS = 300_000


def get_config(size=None):
    c = beta_vae_dsprites.get_config(size)
    c.architecture = "conv"
    c.conv_channels = (32, 32, 64, 64)
    c.conv_kernel_size = 4
    c.conv_upsample = "transpose"
    c.hidden_dims = (256,)
    c.learning_rate = 1e-4
    c.scan_steps = True              # an accelerator runs convs in the scanned chunk as fast as outside it
    if size == "smoke":              # seconds on a CPU: XLA:CPU runs (vmapped) convs in a scan very slowly
        c.conv_channels, c.hidden_dims, c.scan_steps = (4, 4, 8, 8), (16,), False
    else:
        c.num_train_steps = NUM_TRAIN_STEPS
        c.log_every_steps = 1_000
        c.eval_every_steps = NUM_TRAIN_STEPS
        c.checkpoint_every_steps = 50_000
    return c
