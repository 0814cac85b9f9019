"""VQ-VAE end to end (tiny): train, sample refused until a prior is fitted, fit the PixelCNN, sample."""
import importlib
import json
import os

import jax
import numpy as np
import pytest

import aejax
from aejax.evaluation.evaluate_run import EvalOptions, evaluate_run
from aejax.studies import code_prior
from aejax.training.loop import train_and_evaluate
from aejax.training.writers import read_metrics


def _smoke(**overrides):
    config = importlib.import_module("experiments.vq_vae").get_config("smoke")
    config.update(overrides)
    return config


def test_codebook_usage_of_a_known_grid():
    codes = np.array([[[0, 0], [0, 1]], [[0, 2], [1, 0]]])   # 0: 5, 1: 2, 2: 1 of 8; codes 3 and 4 unused
    p = np.array([5, 2, 1]) / 8
    usage = code_prior.codebook_usage(codes, 5)
    assert usage["perplexity"] == pytest.approx(np.exp(-np.sum(p * np.log(p))))
    assert usage["dead_codes"] == 2


def _train(workdir, form):
    final = train_and_evaluate(_smoke(codebook_loss=form), workdir)
    # the reconstruction term falls; in 20 steps the commitment term can rise while z_e grows
    reconstruction = [r["train/reconstruction"] for r in read_metrics(workdir) if "train/reconstruction" in r]
    assert reconstruction[-1] < reconstruction[0], reconstruction
    assert {"loss", "mse", "reconstruction", "commitment_loss", "perplexity", "dead_codes"} <= set(final)
    assert all(np.isfinite(float(v)) for v in final.values() if np.ndim(v) == 0)
    return aejax.load(workdir)


def test_vq_vae_trains_and_refuses_to_sample_without_a_prior(tmp_path):
    workdir = str(tmp_path)
    model = _train(workdir, "ema")
    x = np.random.default_rng(0).integers(0, 256, size=(3, 8, 8, 1), dtype=np.uint8)
    assert model.reconstruct(x).shape == (3, 8, 8, 1)
    assert model.code(x).shape == (3, 2, 2, model.latent_dim)   # 8x8 → two stride-2 convs → a 2x2 grid
    with pytest.raises(ValueError, match=f"python -m aejax.prior --workdir={workdir}"):
        model.sample(jax.random.PRNGKey(0), 2)


@pytest.mark.slow
def test_evaluate_reads_a_grid_of_codes(tmp_path):
    """aejax.evaluate decodes the grids for the reconstruction figures, and clusters them as flat vectors."""
    workdir = str(tmp_path)
    _train(workdir, "ema")
    report = evaluate_run(workdir, options=EvalOptions(num_importance_samples=0, n2d=False, baselines=False,
                                                       num_quality_samples=0))
    assert 0 < report["metrics"]["recon_mse_per_pixel"] < 1
    assert 0 <= report["metrics"]["kmeans_codes_nmi"] <= 1 and 0 <= report["metrics"]["probe_codes_accuracy"] <= 1


@pytest.mark.slow
def test_vq_vae_samples_through_its_fitted_prior(tmp_path):
    workdir = str(tmp_path)
    model = _train(workdir, "loss")
    report = code_prior.fit(workdir, code_prior.PriorOptions(channels=8, num_layers=1, num_epochs=2,
                                                             batch_size=64, max_examples=300))
    assert 0 < report["test_bits_per_dim"] < 2 * report["uniform_bits_per_dim"]
    assert report["codebook_usage"]["train"]["dead_codes"] <= 16
    with open(os.path.join(workdir, "prior", "report.json")) as f:
        assert json.load(f)["step"] == model.step
    samples = np.asarray(aejax.load(workdir).sample(jax.random.PRNGKey(0), 5))
    assert samples.shape == (5, 8, 8, 1) and np.all((samples >= 0) & (samples <= 1))


@pytest.mark.slow
def test_a_vq_vae_population_vmaps_its_ema_state(tmp_path):
    """Members differing in γ and β share one vmapped program; each follows its separate run."""
    from aejax.training.population import split_into_populations
    from aejax.training.population_run import train_population
    configs = [_smoke(ema_decay=0.99, seed=0), _smoke(ema_decay=0.9, commitment_weight=1.0, seed=1)]
    assert split_into_populations(configs) == [[0, 1]]
    workdirs = [str(tmp_path / f"member{i}") for i in range(2)]
    results = train_population(configs, workdirs, vectorize=True)
    assert all(r["error"] is None for r in results)
    alone = str(tmp_path / "alone")
    train_and_evaluate(configs[1], alone)
    for x, y in zip(jax.tree_util.tree_leaves(aejax.load(workdirs[1]).params),
                    jax.tree_util.tree_leaves(aejax.load(alone).params), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-4)
