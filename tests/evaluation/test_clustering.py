"""Clustering metrics: Hungarian accuracy, k-means scores, PCA codes, linear probe."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA

from aejax.evaluation.clustering import (
    cluster_accuracy,
    clustering_scores,
    linear_probe_accuracy,
    pca_codes,
    umap_codes,
)


def test_permuted_labels_are_perfect():
    true = np.array([0, 0, 1, 1, 2, 2, 2])
    pred = np.array([5, 5, 3, 3, 9, 9, 9])  # arbitrary ids, a relabelling of `true`
    assert cluster_accuracy(true, pred) == 1.0


def test_hungarian_beats_greedy():
    # Contingency [classes x clusters] = [[5, 4, 0], [4, 0, 0], [0, 0, 1]].
    # Greedy by largest cell: 0->0 (5), then class 1 can only take cluster 1 or 2 (0 each),
    # class 2 -> 2 (1): total 6.  Optimal: 0->1 (4), 1->0 (4), 2->2 (1) = 9 of 14.
    counts = np.array([[5, 4, 0], [4, 0, 0], [0, 0, 1]])
    true = np.repeat(np.repeat(np.arange(3), 3), counts.ravel())
    pred = np.repeat(np.tile(np.arange(3), 3), counts.ravel())
    assert cluster_accuracy(true, pred) == pytest.approx(9 / 14)


def test_more_clusters_than_classes_counts_unmatched_as_errors():
    true = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pred = np.array([0, 0, 2, 2, 1, 1, 1, 3])  # class 0 split in two, class 1 mostly in 1
    # Best one-to-one: 0->0 (or 2) gives 2, 1->1 gives 3: 5 of 8.
    assert cluster_accuracy(true, pred) == pytest.approx(5 / 8)


def test_cluster_accuracy_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        cluster_accuracy([0, 1], [0, 1, 1])


def test_clustering_scores_on_separated_blobs():
    codes, labels = make_blobs(n_samples=600, centers=4, n_features=8, cluster_std=0.5, random_state=0)
    scores = clustering_scores(codes, labels, num_clusters=4, seed=0)
    assert set(scores) == {"accuracy", "nmi", "ari"}
    assert scores["accuracy"] == pytest.approx(1.0)
    assert scores["nmi"] == pytest.approx(1.0)
    assert scores["ari"] == pytest.approx(1.0)
    assert clustering_scores(codes, labels, num_clusters=4, seed=0) == scores  # seeded


def test_pca_codes_match_sklearn_up_to_sign():
    rng = np.random.default_rng(0)
    train = rng.standard_normal((200, 3, 4)) @ np.diag([3.0, 2.0, 1.0, 0.5])  # images-like, flattened inside
    test = rng.standard_normal((50, 3, 4))
    ours = pca_codes(train, test, dim=3)
    ref = PCA(n_components=3).fit(train.reshape(200, -1)).transform(test.reshape(50, -1))
    assert ours.shape == (50, 3)
    signs = np.sign(np.sum(ours * ref, axis=0))
    np.testing.assert_allclose(ours, ref * signs, atol=1e-8)


def test_pca_codes_fit_on_train_only():
    train = np.array([[1.0, 0.0], [-1.0, 0.0], [3.0, 0.0], [-3.0, 0.0]])  # all variance along x
    codes = pca_codes(train, np.array([[0.0, 5.0], [2.0, 0.0]]), dim=1)
    np.testing.assert_allclose(codes, [[0.0], [2.0]], atol=1e-12)  # y is ignored; x-axis sign fixed positive


def test_linear_probe_on_separable_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((800, 10)) * 1000.0  # large scale: the probe standardises
    y = (x[:, 0] + x[:, 3] > 0).astype(int)
    acc = linear_probe_accuracy(x[:600], y[:600], x[600:], y[600:], max_iter=500)
    assert acc >= 0.98


@pytest.mark.slow
def test_umap_then_kmeans_is_deterministic_and_keeps_blobs():
    """The N2D pipeline (codes -> UMAP -> k-means); slow only because umap/numba start up."""
    codes, labels = make_blobs(n_samples=300, centers=3, n_features=16, cluster_std=1.0, random_state=1)
    emb = umap_codes(codes, dim=3, n_neighbors=15, seed=0)
    assert emb.shape == (300, 3)
    np.testing.assert_array_equal(emb, umap_codes(codes, dim=3, n_neighbors=15, seed=0))
    assert clustering_scores(emb, labels, num_clusters=3, seed=0)["accuracy"] == pytest.approx(1.0)


def test_pca_codes_with_fewer_examples_than_features_match_sklearn():
    rng = np.random.default_rng(1)
    train = rng.standard_normal((12, 40)) * np.linspace(3.0, 0.1, 40)  # the SVD branch (N < D)
    test = rng.standard_normal((5, 40))
    ours = pca_codes(train, test, dim=4)
    ref = PCA(n_components=4).fit(train).transform(test)
    signs = np.sign(np.sum(ours * ref, axis=0))
    np.testing.assert_allclose(ours, ref * signs, atol=1e-8)


@pytest.mark.slow
def test_umap_and_the_gmm_run_with_one_blas_thread_whatever_the_caller_allows(monkeypatch):
    """UMAP's spectral start reduces in another order with another BLAS thread count (on 20,000 codes of the N2D
    run, 1 core and 2 gave different embeddings): one thread, so the same seed gives the same numbers anywhere."""
    import umap
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_info, threadpool_limits

    from aejax.evaluation.n2d import gmm_clusters
    seen = []
    fit_transform, fit = umap.UMAP.fit_transform, GaussianMixture.fit

    def record(original):
        def wrapped(self, *args, **kwargs):
            seen.append({pool["num_threads"] for pool in threadpool_info()})
            return original(self, *args, **kwargs)
        return wrapped

    monkeypatch.setattr(umap.UMAP, "fit_transform", record(fit_transform))
    monkeypatch.setattr(GaussianMixture, "fit", record(fit))
    codes, _ = make_blobs(n_samples=120, centers=3, n_features=8, random_state=0)
    with threadpool_limits(4):  # a caller (or a machine) that allows several
        gmm_clusters(umap_codes(codes, dim=2, n_neighbors=10, seed=0), 3, seed=0)
    assert seen == [{1}, {1}]
