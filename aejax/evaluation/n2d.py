"""N2D as published (McConville et al. 2019): codes → UMAP → Gaussian mixture, scored against the labels.

The released code (github.com/rymc/n2d, run.sh) embeds the autoencoder's codes of
every image with UMAP (n_components = number of clusters, 20 neighbours,
min_dist 0, euclidean) and clusters the embedding with a full-covariance
Gaussian mixture of that many components; cluster i of image n is the argmax of
its responsibilities. The evaluate command's N2D row (`aejax.evaluate`, test
codes, k-means after UMAP) is a cheaper relative of this; this module is the
protocol the paper's table is measured with.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from aejax.core.errors import UserError
from aejax.evaluation.clustering import cluster_accuracy, umap_codes

# The paper's Table 2 (accuracy, NMI; ARI is not reported) for datasets aejax has.
PUBLISHED = {"fashion_mnist": {"accuracy": 0.672, "nmi": 0.684}}


@dataclasses.dataclass(frozen=True)
class Protocol:
    """The settings of the paper's run.sh; `umap_dim` 0 means "the number of clusters"."""
    umap_dim: int = 0
    n_neighbors: int = 20
    min_dist: float = 0.0


def gmm_clusters(points: np.ndarray, num_clusters: int, *, seed: int) -> np.ndarray:
    """Cluster ids from a full-covariance Gaussian mixture fitted to `points` (argmax responsibility).

    One BLAS thread, as for UMAP (`umap_codes`): the same ids whatever the core count.
    """
    mixture = GaussianMixture(n_components=num_clusters, covariance_type="full", random_state=seed)
    with threadpool_limits(1):
        return mixture.fit(points).predict(points)


def assignment_scores(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """{"accuracy" (Hungarian), "nmi", "ari"} of cluster ids `predicted` against `labels`, both [N]."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    return {"accuracy": cluster_accuracy(labels, predicted),
            "nmi": float(normalized_mutual_info_score(labels, predicted)),
            "ari": float(adjusted_rand_score(labels, predicted))}


def n2d_scores(codes: np.ndarray, labels: np.ndarray, num_clusters: int, *, seed: int,
               protocol: Protocol = Protocol()) -> dict[str, float]:
    """{"accuracy", "nmi", "ari"} of the N2D clustering of `codes` [N, D]; `seed` seeds UMAP and the GMM."""
    embedded = umap_codes(codes, dim=protocol.umap_dim or num_clusters, n_neighbors=protocol.n_neighbors,
                          min_dist=protocol.min_dist, seed=seed)
    return assignment_scores(labels, gmm_clusters(embedded, num_clusters, seed=seed))


def read_assignment(path: str, num_images: int) -> np.ndarray:
    """Cluster ids from a text file of one integer per image (as the paper's code saves them, `np.savetxt`).

    The file must list every image of the dataset in its order (train, then test); a
    count that differs is an error, not a partial score.
    """
    try:
        predicted = np.loadtxt(path, dtype=np.int64, ndmin=1)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read cluster ids from {path} ({error}): give a text file of one integer "
                        "per line") from None
    if predicted.ndim != 1 or len(predicted) != num_images:
        raise UserError(f"{path} has {predicted.size} cluster ids for {num_images:,} images: it must list every "
                         "image of the dataset, train then test, one id per line")
    return predicted


def summarize(per_seed: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation over seeds of each score."""
    out = {}
    for name in per_seed[0]:
        values = np.asarray([s[name] for s in per_seed])
        out[name] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    return out
