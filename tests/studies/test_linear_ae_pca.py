"""A linear autoencoder trained on squared error learns the PCA subspace (Baldi & Hornik 1989)."""
import numpy as np
import pytest
from scipy.linalg import subspace_angles

import aejax
from aejax import data
from aejax.training.loop import train_and_evaluate
from experiments import linear_ae


def flat(split):
    x = data.load_split("digits", split)["image"].astype(np.float64)
    return x.reshape(len(x), -1) / 255.0


@pytest.mark.slow
@pytest.mark.parametrize("k", [2, 10, 16])
def test_linear_ae_reaches_pca_test_mse_and_subspace(k, tmp_path):
    x_train, x_test = flat("train"), flat("test")
    mean = x_train.mean(axis=0)
    _, _, vt = np.linalg.svd(x_train - mean, full_matrices=False)
    basis = vt[:k].T
    pca_mse = np.mean(np.square((x_test - mean) @ basis @ basis.T + mean - x_test))

    config = linear_ae.get_config()
    config.update(dataset="digits", latent_dim=k, num_train_steps=5000, learning_rate=1e-2,
                  log_every_steps=5000, eval_every_steps=5000, checkpoint_every_steps=5000)
    final = train_and_evaluate(config, str(tmp_path))
    assert float(final["mse"]) < 1.01 * pca_mse, (float(final["mse"]), pca_mse)

    # The decoder x̂ = zK + b spans the rows of K: compare that span with the top-k subspace.
    kernel = np.asarray(aejax.load(str(tmp_path)).params["params"]["decoder"]["MLP_0"]["dense_0"]["kernel"])
    angles = np.degrees(subspace_angles(kernel.T.astype(np.float64), basis))
    assert np.median(angles) < 2.0 and angles.max() < 10.0, angles
