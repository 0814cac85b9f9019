"""`python -m aejax.evaluate` and `python -m aejax.inspect` on tiny trained runs (VAE and AE)."""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import types

import jax
import numpy as np
import pytest

import aejax
from aejax.evaluation import inputs as evaluation
from aejax.evaluation import inspect_run
from aejax.figures import latents as latent_figures
from aejax.training.loop import train_and_evaluate
from experiments import base

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, JAX_PLATFORMS="cpu")

LIKELIHOOD_METRICS = {"elbo", "log_px_iw", "iw_gap", "bpd_elbo", "bpd_iw", "reconstruction_nll", "kl",
                      "active_units"}
COMMON_METRICS = {"recon_mse_per_pixel", "recon_mse_per_pixel_grey", "recon_bce_nats",
                  "kmeans_codes_accuracy", "kmeans_codes_nmi", "kmeans_codes_ari",
                  "n2d_accuracy", "n2d_nmi", "n2d_ari", "kmeans_pca_accuracy", "kmeans_pixels_accuracy",
                  "probe_codes_accuracy", "probe_pca_accuracy"}
INSPECT_FILES = {"reconstructions.png", "manifold.png", "traversals.png", "interpolations.png",
                 "latents.npz", "index.html"}


def smoke_config(model, **overrides):
    config = base.get_config("smoke")
    config.model = model
    for key, value in overrides.items():
        config[key] = value
    return config


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("vae"))
    train_and_evaluate(smoke_config("vae"), workdir)
    return workdir


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    # A 2-D deterministic code (a denoising AE): the scatter shows the codes themselves, the
    # grid uses their empirical quantiles, and inspect adds the before/after denoising figure.
    workdir = str(tmp_path_factory.mktemp("ae"))
    train_and_evaluate(smoke_config("denoising", latent_dim=2, corruption="masking",
                                          corruption_prob=0.3, noise_std=0.3, binarize="none"), workdir)
    return workdir


def command(module, workdir, *flags):
    result = subprocess.run([sys.executable, "-m", module, f"--workdir={workdir}", *flags],
                            cwd=REPO, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_eval_data_follow_the_runs_binarisation_reproducibly():
    config = smoke_config("vae")
    a, b = evaluation.load_eval_data(config, "test"), evaluation.load_eval_data(config, "test")
    np.testing.assert_array_equal(a.x, b.x)                        # one fixed draw
    assert set(np.unique(a.x).tolist()) == {0.0, 1.0}              # dynamic → binary
    assert abs(a.x.mean() - a.grey.mean()) < 0.01                  # E[x] = grey level
    config.binarize = "none"
    np.testing.assert_array_equal(evaluation.load_eval_data(config, "test").x, a.grey)


@pytest.mark.slow
def test_evaluate_vae_writes_every_metric(vae_run):
    result = command("aejax.evaluate", vae_run, "--num_importance_samples=64", "--samples_per_chunk=16")
    report = json.load(open(os.path.join(vae_run, "eval.json")))
    metrics = report["metrics"]
    assert LIKELIHOOD_METRICS | COMMON_METRICS <= set(metrics)
    assert "log_px_iw" in result.stdout and "kmeans_codes_accuracy" in result.stdout
    for stage in ("load data", "likelihood (K=64)", "PCA of the pixels (fit on train)", "k-means on codes",
                  "N2D: UMAP of the codes, then k-means", "k-means on raw pixels", "linear probe"):
        assert f"evaluate: {stage} ..." in result.stderr and f"evaluate: {stage} done in " in result.stderr, stage
    assert "log p(x) with K=64: batch 4/4 (100%)" in result.stderr  # importance sampling's progress line
    assert report["num_examples"] == 359 and report["binarize"] == "dynamic"
    assert metrics["log_px_iw"] >= metrics["elbo"]
    assert metrics["bpd_iw"] == pytest.approx(-metrics["log_px_iw"] / (64 * math.log(2)))
    assert metrics["kl"] == pytest.approx(sum(report["per_dim"]["kl"]), rel=1e-5)
    # The Monte Carlo ELBO and −(E_q[−log p(x|z)] + analytic KL) agree up to the KL's MC noise.
    assert metrics["elbo"] == pytest.approx(-(metrics["reconstruction_nll"] + metrics["kl"]), abs=0.05)
    assert 0 <= metrics["active_units"] <= 4
    for name in ("kmeans_codes_accuracy", "n2d_accuracy", "probe_codes_accuracy"):
        assert 0.0 < metrics[name] <= 1.0
    # Reconstruction error recomputed here from the restored model and the same data.
    trained = aejax.load(vae_run)
    data = evaluation.load_eval_data(trained.config, "test")
    recon = np.asarray(trained.reconstruct(data.x))
    assert metrics["recon_mse_per_pixel"] == pytest.approx(np.mean((recon - data.x) ** 2), rel=1e-4)
    p = np.clip(recon.astype(np.float64), 1e-6, 1 - 1e-6)
    bce = -np.mean(np.sum(data.x * np.log(p) + (1 - data.x) * np.log(1 - p), axis=(1, 2, 3)))
    assert metrics["recon_bce_nats"] == pytest.approx(bce, rel=1e-4)


@pytest.mark.slow
def test_inspect_vae_writes_every_figure(vae_run):
    result = command("aejax.inspect", vae_run, "--num_images=16", "--grid_size=4")
    for stage in ("encode 359 images", "PCA of 359 codes", "UMAP of 359 codes", "scatter plot latents_umap.png"):
        assert f"inspect: {stage} ..." in result.stderr and f"inspect: {stage} done in " in result.stderr, stage
    out = os.path.join(vae_run, "inspect")
    expected = INSPECT_FILES | {"samples.png", "latents_pca.png", "latents_umap.png"}
    assert expected <= set(os.listdir(out))
    latents = np.load(os.path.join(out, "latents.npz"))
    assert latents["codes"].shape == (359, 4) and latents["labels"].shape == (359,)
    assert latents["logvar"].shape == (359, 4)
    # The traversal rows' KL labels: mean KL(N(μ, σ²) ‖ N(0, 1)) per dim over the test images.
    mu, logvar = latents["codes"].astype(np.float64), latents["logvar"].astype(np.float64)
    kl = np.mean(0.5 * (mu ** 2 + np.exp(logvar) - logvar - 1), axis=0)
    np.testing.assert_allclose(latents["kl_per_dim"], kl, rtol=1e-4, atol=1e-6)
    page = open(os.path.join(out, "index.html")).read()
    for name in expected - {"latents.npz", "index.html"}:
        assert f'src="{name}"' in page
    assert "latent_dim" in page   # the config table


@pytest.mark.slow
def test_evaluate_and_inspect_a_deterministic_autoencoder(ae_run):
    command("aejax.evaluate", ae_run, "--non2d")
    metrics = json.load(open(os.path.join(ae_run, "eval.json")))["metrics"]
    assert not LIKELIHOOD_METRICS & set(metrics)
    # Grey-level inputs (binarize="none"): no separate grey-image MSE to report.
    assert COMMON_METRICS - {"n2d_accuracy", "n2d_nmi", "n2d_ari", "recon_mse_per_pixel_grey"} <= set(metrics)
    command("aejax.inspect", ae_run, "--num_images=16", "--grid_size=4")
    out = os.path.join(ae_run, "inspect")
    files = set(os.listdir(out))
    assert INSPECT_FILES | {"latents_codes.png"} <= files
    assert "samples.png" not in files and "denoising.png" in files
    page = open(os.path.join(out, "index.html")).read()
    assert "kmeans_codes_accuracy" in page          # the eval table of eval.json
    assert "denoising.png" in page


def test_evaluate_reports_a_missing_run_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "aejax.evaluate", f"--workdir={tmp_path}"],
                            cwd=REPO, env=ENV, capture_output=True, text=True)
    assert result.returncode == 2 and "has no checkpoints/ directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_latent_grid_is_the_prior_inverse_cdf_or_the_code_quantiles():
    generative = types.SimpleNamespace(variant=types.SimpleNamespace(generative=True))
    deterministic = types.SimpleNamespace(variant=types.SimpleNamespace(generative=False))
    codes = np.arange(101, dtype=np.float32)[:, None] * np.array([[1.0, 10.0]], np.float32)
    # Φ⁻¹(0.05) = −1.6449, Φ⁻¹(0.5) = 0.
    np.testing.assert_allclose(latent_figures.latent_values(generative, codes, 0, 3), [-1.644854, 0.0, 1.644854],
                               atol=1e-5)
    np.testing.assert_allclose(latent_figures.latent_values(deterministic, codes, 1, 3), [50.0, 500.0, 950.0])
    np.testing.assert_array_equal(latent_figures.latent_centre(generative, codes), [0.0, 0.0])
    np.testing.assert_array_equal(latent_figures.latent_centre(deterministic, codes), [50.0, 500.0])
    assert list(latent_figures.dims_by_activity(codes)) == [1, 0]


def test_corruption_is_the_denoising_registry_entry_of_the_config():
    config = smoke_config("denoising", corruption="masking", corruption_prob=1.0)
    corrupt, why_not = inspect_run.corruption(config)
    assert why_not == ""
    np.testing.assert_array_equal(corrupt(jax.random.PRNGKey(0), np.ones((2, 3))), np.zeros((2, 3)))
    config.corruption = "nope"
    assert inspect_run.corruption(config)[0] is None and "not in CORRUPTIONS" in inspect_run.corruption(config)[1]
    del config["corruption"]
    assert inspect_run.corruption(config) == (None, "the config has no corruption")


@pytest.mark.parametrize("module", ["aejax.evaluate", "aejax.inspect"])
def test_a_read_only_workdir_is_refused_before_computing(vae_run, tmp_path, small_filesystem, module):
    with small_filesystem(tmp_path / "disk", 8192) as mount:
        workdir = os.path.join(mount, "run")
        shutil.copytree(vae_run, workdir)
        subprocess.run(["mount", "-o", "remount,ro", mount], check=True)
        result = subprocess.run([sys.executable, "-m", module, f"--workdir={workdir}"], cwd=REPO, env=ENV,
                                capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    where = workdir if module == "aejax.evaluate" else os.path.join(workdir, "inspect")
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"error: {'the workdir' if module == 'aejax.evaluate' else 'the output folder'} {where} is not "
        "writable (Read-only file system)")
    assert "evaluate: load data" not in result.stderr  # refused before any work


@pytest.mark.parametrize("module", ["aejax.evaluate", "aejax.inspect", "aejax.n2d"])
def test_a_full_disk_is_refused_before_computing(vae_run, tmp_path, small_filesystem, module):
    with small_filesystem(tmp_path / "disk", 8192) as mount:
        workdir = os.path.join(mount, "run")
        shutil.copytree(vae_run, workdir)
        os.makedirs(os.path.join(workdir, "inspect"), exist_ok=True)
        with open(os.path.join(mount, "ballast"), "wb") as f:
            f.write(b"\0" * (shutil.disk_usage(mount).free - 200_000))
        result = subprocess.run([sys.executable, "-m", module, f"--workdir={workdir}"], cwd=REPO, env=ENV,
                                capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    where, what = (os.path.join(workdir, "inspect"), "the output folder") if module == "aejax.inspect" else (
        workdir, "the workdir")
    assert re.fullmatch(rf"error: {what} {where} is on a full disk \(0\.[12] MiB free, about 1\.0 MiB needed for "
                        r"what this command writes\); free some space and rerun the same command",
                        result.stderr.strip().splitlines()[-1])
    assert "load data" not in result.stderr and "UMAP" not in result.stderr  # refused before any work
