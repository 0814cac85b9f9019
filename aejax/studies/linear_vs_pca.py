"""Does a linear autoencoder learn PCA? Train one per k and compare with the top-k principal subspace.

What `python -m aejax.linear_vs_pca` runs:

    python -m aejax.linear_vs_pca --config=experiments/linear_ae.py --workdir=DIR --latent_dims=2,10,32

For each k: a linear AE (config with latent_dim=k) trained in DIR/k<k> by the
normal trainer, and PCA from an SVD of the centred training images. Reported:
the test MSE of both (per pixel, images in [0, 1]), their ratio, the
principal angles between the decoder's column space and the top-k principal
subspace (scipy.linalg.subspace_angles), and the relative gap between the k-th
and (k+1)-th principal variances: where it is tiny, directions on either side
of the cut cost almost the same error, so the largest angle converges slowly
while the MSE already matches. A rerun reuses finished runs. Written to DIR/results.json and DIR/results.md.
"""
from __future__ import annotations

import json
import os

import numpy as np
from scipy.linalg import subspace_angles

from aejax.core.files import atomic_write
from aejax.data import splits
from aejax.training.loop import train_and_evaluate
from aejax.training.restore import load


def flat_unit(split: splits.Split) -> np.ndarray:
    return np.asarray(split.images, np.float64).reshape(split.num_examples, -1) / 255.0


def principal_subspace(x_train: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, [D, k] orthonormal top-k principal directions, all variances) of the training data."""
    mean = x_train.mean(axis=0)
    _, singular_values, vt = np.linalg.svd(x_train - mean, full_matrices=False)
    return mean, vt[:k].T, singular_values ** 2 / len(x_train)


def pca_mse(x: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> float:
    reconstruction = (x - mean) @ basis @ basis.T + mean
    return float(np.mean(np.square(reconstruction - x)))


def decoder_columns(params) -> np.ndarray:
    """[D, k]: the directions the linear decoder x̂ = zK + b spans (the rows of its kernel K)."""
    return np.asarray(params["params"]["decoder"]["MLP_0"]["dense_0"]["kernel"], np.float64).T


def compare(config, workdir: str, latent_dims) -> list[dict]:
    x_train = flat_unit(splits.load(config, "train"))
    x_test = flat_unit(splits.load(config, "test"))
    mean, components, variances = principal_subspace(x_train, max(latent_dims))
    rows = []
    for k in latent_dims:
        run_config = config.copy_and_resolve_references()
        run_config.latent_dim = k
        run_dir = os.path.join(workdir, f"k{k}")
        train_and_evaluate(run_config, run_dir)   # resumes, or returns at once if done
        model = load(run_dir)
        reconstruction = np.asarray(model.reconstruct(x_test.reshape(-1, *model.image_shape)), np.float64)
        ae = float(np.mean(np.square(reconstruction.reshape(x_test.shape) - x_test)))
        basis = components[:, :k]
        angles = np.degrees(subspace_angles(decoder_columns(model.params), basis))
        pca = pca_mse(x_test, mean, basis)
        rows.append({"k": k, "ae_test_mse": ae, "pca_test_mse": pca, "ratio": ae / pca,
                     "max_angle_deg": float(angles.max()), "median_angle_deg": float(np.median(angles)),
                     "eigengap": float(1 - variances[k] / variances[k - 1])})
    rows.sort(key=lambda row: row["k"])
    atomic_write(os.path.join(workdir, "results.json"), json.dumps(rows, indent=2))
    atomic_write(os.path.join(workdir, "results.md"), results_table(rows))
    return rows


def results_table(rows: list[dict]) -> str:
    lines = ["| k | linear AE test MSE | PCA test MSE | AE / PCA | largest principal angle | median angle "
             "| gap 1 − λ_{k+1}/λ_k |", "|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['k']} | {r['ae_test_mse']:.5f} | {r['pca_test_mse']:.5f} | {r['ratio']:.4f} | "
              f"{r['max_angle_deg']:.1f}° | {r['median_angle_deg']:.2f}° | {r['eigengap']:.3f} |" for r in rows]
    return "\n".join(lines) + "\n"
