"""Clustering and linear-probe metrics for learned codes.

Codes are plain arrays ``[N, D]``; anything with more trailing axes (images) is flattened.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits


def _flat(x) -> np.ndarray:
    x = np.asarray(x)
    return x.reshape(len(x), -1)


def cluster_accuracy(labels_true, labels_pred) -> float:
    """Fraction of points correct under the best one-to-one cluster->class matching.

    Cluster ids are arbitrary, so accuracy is only meaningful after relabelling; the
    Hungarian algorithm finds the optimal matching (greedy matching can be worse). With
    more clusters than classes the unmatched clusters count as errors.
    """
    labels_true, labels_pred = np.asarray(labels_true), np.asarray(labels_pred)
    if labels_true.shape != labels_pred.shape or labels_true.ndim != 1:
        raise ValueError(f"need two 1-D label arrays of equal length, got {labels_true.shape} and {labels_pred.shape}")
    counts = contingency_matrix(labels_true, labels_pred)  # [classes, clusters]
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(labels_true))


def clustering_scores(codes, labels, num_clusters: int, *, seed: int, n_init: int = 4) -> dict[str, float]:
    """k-means on the codes, scored against the labels: {"accuracy", "nmi", "ari"}.

    ``n_init`` restarts (k-means++ seeded by ``seed``) keep the best inertia, so the
    score reflects the code geometry rather than one unlucky initialisation.
    """
    labels = np.asarray(labels)
    pred = KMeans(n_clusters=num_clusters, n_init=n_init, random_state=seed).fit_predict(_flat(codes))
    return {
        "accuracy": cluster_accuracy(labels, pred),
        "nmi": float(normalized_mutual_info_score(labels, pred)),
        "ari": float(adjusted_rand_score(labels, pred)),
    }


def pca_codes(train_x, x, dim: int) -> np.ndarray:
    """Project ``x`` onto the top-``dim`` principal axes of ``train_x`` (the linear-AE baseline).

    Fit on training data only so test codes never leak into the basis. Signs are fixed
    (largest-magnitude loading of each axis positive) so results are reproducible. With
    more examples than features the axes are the top eigenvectors of the D x D scatter
    matrix (60,000 x 784 pixels: about a second, where a thin SVD takes a minute).
    """
    train_x = _flat(train_x).astype(np.float64)
    mean = train_x.mean(axis=0)
    centred = train_x - mean
    if centred.shape[0] >= centred.shape[1]:
        _, eigenvectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
        axes = eigenvectors[:, ::-1][:, :dim].T
    else:
        axes = np.linalg.svd(centred, full_matrices=False)[2][:dim]
    pivot = np.abs(axes).argmax(axis=1)
    axes = axes * np.sign(axes[np.arange(len(axes)), pivot])[:, None]
    return (_flat(x) - mean) @ axes.T


def umap_codes(codes, *, dim: int = 2, n_neighbors: int = 20, min_dist: float = 0.0, seed: int) -> np.ndarray:
    """UMAP embedding of AE codes for the AE -> UMAP -> k-means pipeline (N2D, McConville et al. 2019).

    N2D uses ``min_dist=0`` (tight clumps suit k-means) and ``dim`` = number of clusters;
    a fixed ``random_state`` makes umap-learn deterministic (and single-threaded) for
    a given number of BLAS threads, but its spectral initialisation's BLAS calls
    reduce in another order with another thread count: one BLAS thread, so that the
    same codes and seed give the same embedding on 1 core and on 16.
    umap is imported lazily because its numba start-up costs several seconds.
    """
    import umap  # noqa: PLC0415

    reducer = umap.UMAP(
        n_components=dim, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed, n_jobs=1
    )
    with threadpool_limits(1):
        return reducer.fit_transform(_flat(codes))


def linear_probe_accuracy(train_codes, train_labels, test_codes, test_labels, *, max_iter: int = 1000) -> float:
    """Test accuracy of a logistic regression on frozen codes: how linearly decodable the labels are.

    Features are standardised (statistics from the training codes) so the fixed L2
    penalty means the same thing whatever the code scale.
    """
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    probe.fit(_flat(train_codes), np.asarray(train_labels))
    return float(probe.score(_flat(test_codes), np.asarray(test_labels)))
