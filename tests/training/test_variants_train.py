"""Every variant of the autoencoder family trains from its experiment config (tiny size, digits)."""
import importlib

import jax
import numpy as np
import pytest

import aejax
from aejax.training.loop import train_and_evaluate
from aejax.training.writers import read_metrics

EXPERIMENTS = ("linear_ae", "stacked_ae", "sparse_l1", "sparse_kl", "denoising", "contractive",
               "conv_ae", "conv_vae", "aae", "iwae", "vae_annealed", "vae_gaussian")
# Metrics a variant must report, beyond loss and mse.
EXPECTED_METRICS = {
    "sparse_l1": ("mean_activation", "active_fraction", "sparsity_penalty"),
    "sparse_kl": ("mean_activation", "active_fraction", "sparsity_penalty"),
    "denoising": ("psnr_noisy", "psnr_reconstruction"),
    "contractive": ("contractive_penalty",),
    "aae": ("discriminator_accuracy", "mmd", "generator_loss", "discriminator_loss"),
    "iwae": ("iwae_bound", "elbo"),
    "vae_annealed": ("kl_weight", "elbo"),
}


def smoke_config(name, **overrides):
    config = importlib.import_module(f"experiments.{name}").get_config("smoke")
    config.update(overrides)
    return config


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_variant_trains_with_a_falling_loss_and_loads(name, tmp_path):
    config = smoke_config(name)
    final = train_and_evaluate(config, str(tmp_path))
    losses = [r["train/loss"] for r in read_metrics(str(tmp_path)) if "train/loss" in r]
    assert losses[-1] < losses[0], losses
    assert all(np.isfinite(float(v)) for v in final.values() if np.ndim(v) == 0)
    assert {"loss", "mse", *EXPECTED_METRICS.get(name, ())} <= set(final), sorted(final)

    model = aejax.load(str(tmp_path))
    assert model.config.model == config.model and model.step == config.num_train_steps
    x = np.random.default_rng(0).integers(0, 256, size=(3, 8, 8, 1), dtype=np.uint8)
    assert model.reconstruct(x).shape == (3, 8, 8, 1)
    assert model.code(x).shape == (3, config.latent_dim)
    if model.variant.generative:
        assert model.sample(jax.random.PRNGKey(0), 5).shape == (5, 8, 8, 1)


def test_adversarial_ae_resume_is_bit_exact(tmp_path):
    """The AAE's own update and per-phase optimiser states checkpoint and resume like any variant."""
    def run(workdir, steps):
        train_and_evaluate(smoke_config("aae", num_train_steps=steps, eval_every_steps=10,
                                              checkpoint_every_steps=10), workdir)
        return aejax.load(workdir).params

    straight = run(str(tmp_path / "straight"), 20)
    run(str(tmp_path / "resumed"), 10)
    resumed = run(str(tmp_path / "resumed"), 20)
    for a, b in zip(jax.tree_util.tree_leaves(straight), jax.tree_util.tree_leaves(resumed), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_stepwise_chunks_train_like_the_scan(tmp_path):
    """scan_steps=False (one jitted call per step, for convs on CPU) sees the same batches and keys."""
    params = {}
    for scan in (True, False):
        workdir = str(tmp_path / str(scan))
        train_and_evaluate(smoke_config("denoising", scan_steps=scan), workdir)
        params[scan] = jax.tree_util.tree_leaves(aejax.load(workdir).params)
    for a, b in zip(params[True], params[False], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
