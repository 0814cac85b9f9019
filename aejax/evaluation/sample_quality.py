"""Sample quality of a generative run on Fashion-MNIST: Fréchet distance and precision/recall.

Both are computed on the features of aejax's own Fashion-MNIST classifier
(`aejax.evaluation.feature_classifier`; no Inception weights exist offline), so they
are named for what they are:

* `fd_fmnist`: the Fréchet distance between Gaussians fitted to the features of the
  samples and of the test images, ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) (the FID
  formula on other features: not comparable with published FIDs);
* `precision_fmnist` / `recall_fmnist` (Kynkäänniemi et al. 2019): each set's
  manifold is the union of balls around its points with radius the distance to the
  point's k-th nearest neighbour in its own set (k = 3); precision is the fraction of
  samples inside the test images' manifold, recall the fraction of test images inside
  the samples'.

Samples are the decoder's mean images (`aejax.load(...).sample`), compared with the
grey-level test images. Other datasets are skipped with a one-line note.
"""
from __future__ import annotations

import jax
import numpy as np
from absl import logging

from aejax.data.arrays import load_split
from aejax.evaluation.feature_classifier import RECIPES, load_or_train

DATASET = "fashion_mnist"
NEIGHBOURS = 3
METRICS = {
    "fd_fmnist": "Fréchet distance of samples vs test images on the Fashion-MNIST classifier's features",
    "precision_fmnist": "samples inside the test images' k-NN manifold (k = 3), same features",
    "recall_fmnist": "test images inside the samples' k-NN manifold (k = 3), same features",
}


# ---------------------------------------------------------------- maths ----

def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of features [N, D], in float64."""
    x = np.asarray(features, np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½): the 2-Wasserstein distance² of two Gaussians.

    Tr((Σ₁Σ₂)^½) = Tr((Σ₁^½ Σ₂ Σ₁^½)^½), a symmetric PSD matrix whose eigenvalues
    are real (no complex square root of a non-symmetric product, unlike sqrtm(Σ₁Σ₂)).
    """
    root = _psd_sqrt(np.asarray(cov1, np.float64))
    inner = root @ np.asarray(cov2, np.float64) @ root
    trace_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)))
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt)


def _squared_distances(a: np.ndarray, b: np.ndarray, b_norms: np.ndarray) -> np.ndarray:
    return np.maximum(np.sum(a * a, axis=1)[:, None] + b_norms[None, :] - 2 * a @ b.T, 0)


def knn_radii(x: np.ndarray, k: int = NEIGHBOURS, chunk: int = 1000) -> np.ndarray:
    """Squared distance from each point of x to its k-th nearest other point of x."""
    x = np.asarray(x, np.float64)
    norms = np.sum(x * x, axis=1)
    radii = np.empty(len(x))
    for start in range(0, len(x), chunk):
        d2 = _squared_distances(x[start:start + chunk], x, norms)
        rows = np.arange(len(d2))
        d2[rows, start + rows] = -1.0  # the point itself: always first, never a neighbour
        radii[start:start + chunk] = np.partition(d2, k, axis=1)[:, k]
    return radii


def coverage(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int = 1000) -> float:
    """The fraction of `points` inside some ball (centre, squared radius) of the manifold."""
    points, centres = np.asarray(points, np.float64), np.asarray(centres, np.float64)
    norms = np.sum(centres * centres, axis=1)
    inside = [np.any(_squared_distances(points[s:s + chunk], centres, norms) <= radii[None, :], axis=1)
              for s in range(0, len(points), chunk)]
    return float(np.mean(np.concatenate(inside)))


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = NEIGHBOURS) -> tuple[float, float]:
    """(precision, recall) of `fake` against `real` (Kynkäänniemi et al. 2019)."""
    return coverage(fake, real, knn_radii(real, k)), coverage(real, fake, knn_radii(fake, k))


def feature_scores(real: np.ndarray, fake: np.ndarray, k: int = NEIGHBOURS) -> dict[str, float]:
    precision, recall = precision_recall(real, fake, k)
    return {"fd_fmnist": frechet_distance(*gaussian_fit(fake), *gaussian_fit(real)),
            "precision_fmnist": precision, "recall_fmnist": recall}


# ------------------------------------------------------------- the run ----

def draw_samples(trained, num_samples: int, seed: int, batch_size: int = 500) -> np.ndarray:
    """`num_samples` decoder means of prior draws, batch i with key fold_in(PRNGKey(seed), i)."""
    key, parts = jax.random.PRNGKey(seed), []
    for i, start in enumerate(range(0, num_samples, batch_size)):
        batch = np.asarray(trained.sample(jax.random.fold_in(key, i), batch_size))
        parts.append(batch[:num_samples - start])
    return np.concatenate(parts)


def score_run(trained, num_samples: int, seed: int = 0, classifier: str = "default",
                   data_dir: str | None = None) -> tuple[dict[str, float], dict]:
    """(metrics, about) of `num_samples` samples of a Fashion-MNIST run against as many test images
    (all 10,000 test images at most); ({}, {"note": why}) for other datasets."""
    dataset = trained.config.dataset
    if dataset != DATASET:
        note = f"sample quality (fd_fmnist, precision_fmnist, recall_fmnist) skipped: it is measured on " \
               f"{DATASET} only, this run is on {dataset}"
        logging.info("%s", note)
        return {}, {"note": note}
    extractor = load_or_train(RECIPES[classifier], data_dir=data_dir)
    test = load_split(DATASET, "test", data_dir=data_dir)["image"][:num_samples]
    real = extractor.features(test)
    fake = extractor.features(draw_samples(trained, num_samples, seed))
    about = {"num_samples": num_samples, "num_test_images": len(test), "neighbours": NEIGHBOURS,
             "classifier": extractor.summary()}
    return feature_scores(real, fake), about


def floor(num_images: int = 10_000, classifier: str = "default", data_dir: str | None = None) -> dict[str, float]:
    """The scores of `num_images` train images in place of samples: what a perfect model would get."""
    extractor = load_or_train(RECIPES[classifier], data_dir=data_dir)
    real = extractor.features(load_split(DATASET, "test", data_dir=data_dir)["image"][:num_images])
    train = extractor.features(load_split(DATASET, "train", data_dir=data_dir)["image"][:num_images])
    return feature_scores(real, train)
