"""N2D as published: the full-covariance GMM, all images of the dataset, the protocol end to end on a smoke run."""
import json
import os

import numpy as np
import pytest
from sklearn.cluster import KMeans

from aejax.data import splits
from aejax.evaluation import n2d
from aejax.evaluation.clustering import cluster_accuracy
from aejax.training.loop import train_and_evaluate
from experiments import n2d as n2d_experiment


MEANS = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
COVARIANCES = np.array([[[4.0, 1.9], [1.9, 1.0]], [[1.0, -0.8], [-0.8, 1.0]], [[3.0, 0.0], [0.0, 0.3]]])


def test_the_gaussian_mixture_agrees_with_the_bayes_classifier_of_the_true_mixture():
    from scipy.stats import multivariate_normal
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 400)
    points = np.concatenate([rng.multivariate_normal(m, c, 400) for m, c in zip(MEANS, COVARIANCES)])
    bayes = np.argmax([multivariate_normal(m, c).logpdf(points) for m, c in zip(MEANS, COVARIANCES)], axis=0)
    predicted = n2d.gmm_clusters(points, 3, seed=0)
    assert cluster_accuracy(bayes, predicted) > 0.98  # the same partition up to cluster ids
    kmeans = KMeans(3, n_init=4, random_state=0).fit_predict(points)
    assert cluster_accuracy(labels, predicted) > cluster_accuracy(labels, kmeans)


def test_summaries_are_mean_and_sample_std_over_seeds():
    summary = n2d.summarize([{"accuracy": 0.6}, {"accuracy": 0.7}, {"accuracy": 0.8}])
    assert summary["accuracy"]["mean"] == pytest.approx(0.7)
    assert summary["accuracy"]["std"] == pytest.approx(0.1)  # sqrt(((0.1)² + 0 + (0.1)²) / 2)


def test_train_split_all_is_the_train_split_then_the_test_split():
    config = n2d_experiment.get_config("smoke")  # digits, train_split = "all"
    every = splits.load(config, "train")
    config.train_split = "train"
    train, test = splits.load(config, "train"), splits.load(config, "test")
    assert every.num_examples == train.num_examples + test.num_examples == 1_438 + 359
    np.testing.assert_array_equal(every.images, np.concatenate([train.images, test.images]))
    np.testing.assert_array_equal(every.labels, np.concatenate([train.labels, test.labels]))
    assert splits.train_size(n2d_experiment.get_config("smoke")) == 1_797


def test_a_saved_clustering_is_scored_against_the_labels_and_must_list_every_image(tmp_path):
    from aejax.core.errors import UserError
    labels = np.array([0, 0, 1, 1, 2, 2])
    path = tmp_path / "clusters.txt"
    np.savetxt(path, [2, 2, 0, 0, 1, 1], fmt="%i")  # the paper's code writes its ids this way
    predicted = n2d.read_assignment(str(path), len(labels))
    assert n2d.assignment_scores(labels, predicted) == {"accuracy": 1.0, "nmi": 1.0, "ari": 1.0}
    np.savetxt(path, [0, 1, 0, 1, 0, 1], fmt="%i")  # best matching: 2 of 6 right, by hand
    assert n2d.assignment_scores(labels, n2d.read_assignment(str(path), 6))["accuracy"] == pytest.approx(2 / 6)
    with pytest.raises(UserError, match="6 cluster ids for 7 images"):
        n2d.read_assignment(str(path), 7)
    (tmp_path / "words.txt").write_text("1\nshirt\n")
    with pytest.raises(UserError, match="one integer per line"):
        n2d.read_assignment(str(tmp_path / "words.txt"), 2)
    with pytest.raises(UserError, match="cannot read"):
        n2d.read_assignment(str(tmp_path / "missing.txt"), 2)


def test_the_curve_scores_the_checkpoints_nearest_the_epochs_asked():
    from aejax.studies.n2d import curve_steps
    kept = [2730, 5460, 8190, 27300, 54600]  # every 10 epochs of 273 steps, some kept
    assert curve_steps(kept, "all", 273) == kept
    assert curve_steps(kept, (10, 30, 95, 1000), 273) == [2730, 8190, 27300, 54600]
    assert curve_steps([], (10,), 273) == []


def test_the_n2d_experiment_is_the_papers_autoencoder():
    c = n2d_experiment.get_config()
    assert (tuple(c.hidden_dims), c.latent_dim, c.activation, c.batch_size, c.num_epochs) == \
        ((500, 500, 2000), 10, "relu", 256, 1000)
    assert (c.model, c.likelihood, c.binarize, c.param_init, c.train_split, c.learning_rate) == \
        ("ae", "gaussian", "none", "keras", "all", 1e-3)


@pytest.mark.slow
def test_the_protocol_runs_on_a_smoke_run_over_seeds_and_checkpoints(tmp_path):
    from aejax.studies import n2d as study
    config = n2d_experiment.get_config("smoke")
    config.num_train_steps, config.checkpoint_every_steps, config.keep_checkpoints = 20, 10, 5
    train_and_evaluate(config, str(tmp_path))
    result = study.run(str(tmp_path), seeds=(0, 1), curve_epochs="all")
    assert result["num_images"] == 1_797 and result["step"] == 20
    assert [c["step"] for c in result["curve"]] == [10, 20]
    assert len(result["per_seed"]) == 2 and 0 < result["summary"]["accuracy"]["mean"] <= 1
    assert json.load(open(tmp_path / "n2d.json"))["summary"] == result["summary"]
    assert os.path.getsize(tmp_path / "n2d_accuracy.png") > 0
    assert "paper" in study.report(result) and "epoch" in study.report(result)
    # Determinism: the same seed gives the same clustering.
    again = study.run(str(tmp_path), seeds=(0,))
    assert again["per_seed"][0] == result["per_seed"][0]
    # Another UMAP dimension writes beside the paper's result, never over it, and says which it ran.
    flat = study.run(str(tmp_path), seeds=(0,), protocol=n2d.Protocol(umap_dim=2))
    assert "dim 2," in flat["protocol"] and flat["published"] is None
    assert json.load(open(tmp_path / "n2d_umap2.json"))["protocol"] == flat["protocol"]
    assert json.load(open(tmp_path / "n2d.json"))["per_seed"][0] == again["per_seed"][0]
    assert flat["per_seed"][0] != again["per_seed"][0]
    # The paper's dimension asked for by its number is the paper's protocol: n2d.json, the paper beside it.
    by_number = study.run(str(tmp_path), seeds=(0,), protocol=n2d.Protocol(umap_dim=10))
    assert by_number["per_seed"] == again["per_seed"] and by_number["published"] == result["published"]
    assert not os.path.exists(tmp_path / "n2d_umap10.json")
