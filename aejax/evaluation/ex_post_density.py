"""Ex-post density estimation (Ghosh et al. 2020): a Gaussian mixture fitted to a deterministic AE's codes.

A deterministic autoencoder (ae, rae, contractive, ...) has no p(z) to sample.
After training, a K-component full-covariance Gaussian mixture is fitted by EM
(scikit-learn) to the codes of the training images, and saved as arrays at
`<workdir>/prior/gmm.npz` (`aejax.core.gaussian_mixture.PRIOR_FILE`), written
atomically. `aejax.load(workdir)` then finds it, and `sample(key, n)` decodes
z ~ Σ_k π_k N(μ_k, Σ_k). This is `python -m aejax.fit_prior`.
"""
from __future__ import annotations

import io
import os

import numpy as np
from sklearn.mixture import GaussianMixture as SklearnMixture

from aejax.core import gaussian_mixture, timing
from aejax.core.errors import ConfigError
from aejax.evaluation.inputs import codes_of, encode_all, evaluation_split, load_eval_data
from aejax.training.restore import load
from aejax.core.files import atomic_write
from aejax.training.workdir import check_writable


def fit_mixture(codes: np.ndarray, num_components: int, seed: int = 0) -> SklearnMixture:
    """EM fit of a full-covariance mixture to codes [N, d] (float64, k-means initialised)."""
    if num_components > len(codes):
        raise ConfigError(f"--components={num_components} exceeds the {len(codes)} codes to fit")
    mixture = SklearnMixture(num_components, covariance_type="full", random_state=seed, max_iter=500)
    return mixture.fit(np.asarray(codes, np.float64))


def save_mixture(path: str, mixture: SklearnMixture, step: int) -> None:
    """The mixture's arrays (and the step of the codes it fits) in one .npz, replaced whole."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, weights=mixture.weights_, means=mixture.means_, covariances=mixture.covariances_,
             step=np.int64(step))
    atomic_write(path, buffer.getvalue())


def fit_prior(workdir: str, num_components: int = 10, step: int | None = None, seed: int = 0,
              max_examples: int = 0, batch_size: int = 500) -> dict:
    """Fits the ex-post prior of the run in `workdir` and saves it; returns what was fitted and its scores.

    Scores: the mean log-likelihood (nats per code) of the training codes and of
    the evaluation split's codes under the mixture.
    """
    trained = load(workdir, step)
    if trained.variant.generative or trained.variant.probabilistic_encoder:
        raise ConfigError(f"model {trained.config.model!r} has its own prior p(z); fit_prior is for "
                          "deterministic autoencoders (ae, rae, contractive, ...)")
    path = os.path.join(workdir, gaussian_mixture.PRIOR_FILE)
    check_writable(os.path.dirname(path), what="the prior folder")
    with timing.stage("fit_prior: encode the training split"):
        train = load_eval_data(trained.config, "train", max_examples)
        codes = np.asarray(codes_of(trained, encode_all(trained, train.x, batch_size)), np.float64)
    with timing.stage(f"fit_prior: EM of {num_components} full-covariance Gaussians on {len(codes)} codes"):
        mixture = fit_mixture(codes, num_components, seed)
    test = load_eval_data(trained.config, evaluation_split(trained.config), max_examples)
    test_codes = np.asarray(codes_of(trained, encode_all(trained, test.x, batch_size)), np.float64)
    save_mixture(path, mixture, trained.step)
    return {"path": path, "step": trained.step, "components": num_components, "num_codes": len(codes),
            "train_log_likelihood": float(mixture.score(codes)),
            "test_log_likelihood": float(mixture.score(test_codes)), "converged": bool(mixture.converged_)}
