"""Sample quality: Fréchet distance and k-NN precision/recall against independent computations,
the cached Fashion-MNIST feature classifier, and `python -m aejax.evaluate` reporting them."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial.distance

from aejax.data.arrays import load_split
from aejax.evaluation import feature_classifier, sample_quality
from aejax.evaluation.evaluate_run import EvalOptions, evaluate_run
from aejax.training.loop import train_and_evaluate
from experiments import base

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE = feature_classifier.RECIPES["smoke"]


# ------------------------------------------------------------------ maths ----

def _random_covariance(rng, d):
    a = rng.normal(size=(d, d + 3))
    return a @ a.T / d


def test_frechet_distance_matches_the_closed_form_with_scipy_sqrtm():
    rng = np.random.default_rng(0)
    for d in (1, 3, 8):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        cov1, cov2 = _random_covariance(rng, d), _random_covariance(rng, d)
        root = scipy.linalg.sqrtm(cov1 @ cov2)       # the textbook form, a non-symmetric product
        expected = np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2 * np.real(root))
        assert sample_quality.frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_frechet_distance_of_diagonal_gaussians_is_the_sum_of_squared_differences():
    # W2² of N(μ₁, diag σ₁²) and N(μ₂, diag σ₂²) is Σ (μ₁ − μ₂)² + Σ (σ₁ − σ₂)².
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 2.0, 0.1])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
    assert sample_quality.frechet_distance(mu1, np.diag(s1 ** 2), mu2, np.diag(s2 ** 2)) == pytest.approx(expected)


def test_gaussian_fit_of_many_samples_recovers_the_distance():
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 1.0, size=(20_000, 2))
    b = rng.normal(0.0, 2.0, size=(20_000, 2)) + np.array([1.0, 0.0])
    # Σ (Δμ)² + Σ (σ₁ − σ₂)² = 1 + 2·1 = 3
    assert sample_quality.frechet_distance(*sample_quality.gaussian_fit(a), *sample_quality.gaussian_fit(b)) == \
        pytest.approx(3.0, abs=0.1)


def _brute_force_precision_recall(real, fake, k):
    """Every distance by itself: radius = the k-th smallest distance to another point of the same set."""
    def radii(points):
        return [sorted(np.linalg.norm(p - q) for j, q in enumerate(points) if j != i)[k - 1]
                for i, p in enumerate(points)]

    def fraction_inside(points, centres):
        r = radii(centres)
        return np.mean([any(np.linalg.norm(p - c) <= r[j] for j, c in enumerate(centres)) for p in points])

    return fraction_inside(fake, real), fraction_inside(real, fake)


@pytest.mark.parametrize("k", [1, 3])
def test_precision_recall_match_a_brute_force_knn(k):
    rng = np.random.default_rng(2)
    real = rng.normal(size=(40, 4))
    fake = 0.6 * rng.normal(size=(30, 4)) + np.array([1.0, 0, 0, 0])
    precision, recall = sample_quality.precision_recall(real, fake, k)
    expected = _brute_force_precision_recall(real, fake, k)
    assert (precision, recall) == pytest.approx(expected)
    assert 0 < precision < 1 and 0 < recall < 1  # a case where both balls matter
    # Chunking changes nothing.
    small = sample_quality.coverage(fake, real, sample_quality.knn_radii(real, k, chunk=7), chunk=5)
    assert small == pytest.approx(expected[0])


def test_disjoint_clouds_have_zero_precision_and_recall():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(50, 3)), rng.normal(size=(50, 3)) + 100.0
    assert sample_quality.precision_recall(real, fake) == (0.0, 0.0)


def test_a_set_scored_against_itself_is_perfect():
    x = np.random.default_rng(4).normal(size=(300, 6))
    scores = sample_quality.feature_scores(x, x.copy())
    assert scores["fd_fmnist"] == pytest.approx(0.0, abs=1e-9)
    assert scores["precision_fmnist"] == scores["recall_fmnist"] == 1.0


# ------------------------------------------------------- the classifier ----

@pytest.fixture(scope="module")
def smoke_classifier(tmp_path_factory):
    root = tmp_path_factory.mktemp("classifier")
    return root, feature_classifier.load_or_train(SMOKE, cache_root=root)


def test_the_test_set_scored_against_itself_on_the_classifier_features(smoke_classifier):
    _, classifier = smoke_classifier
    test = load_split("fashion_mnist", "test")["image"][:1000]
    features = classifier.features(test)
    assert features.shape == (1000, SMOKE.feature_dim)
    scores = sample_quality.feature_scores(features, classifier.features(test.astype(np.float32) / 255.0))
    assert scores["fd_fmnist"] == pytest.approx(0.0, abs=1e-6)
    assert scores["precision_fmnist"] == scores["recall_fmnist"] == 1.0
    # Other images of the same distribution are close, noise is far.
    train = classifier.features(load_split("fashion_mnist", "train")["image"][:1000])
    noise = classifier.features(np.random.default_rng(0).uniform(size=(1000, 28, 28, 1)).astype(np.float32))
    same, far = sample_quality.feature_scores(features, train), sample_quality.feature_scores(features, noise)
    assert same["fd_fmnist"] < 0.1 * far["fd_fmnist"]
    # Noise lands in a small region of feature space (high precision) that covers few test images.
    assert same["precision_fmnist"] > 0.5 and same["recall_fmnist"] > 0.5 > far["recall_fmnist"]


def test_the_classifier_is_cached_by_recipe_and_reproducible(smoke_classifier, tmp_path, monkeypatch):
    root, trained = smoke_classifier
    assert trained.test_accuracy > 0.3  # one short epoch on 2,000 images; the default recipe is in the README
    assert os.path.dirname(trained.directory) == str(root)
    # Cached: no training the second time.
    monkeypatch.setattr(feature_classifier, "train", lambda *a, **k: pytest.fail("trained again"))
    again = feature_classifier.load_or_train(SMOKE, cache_root=root)
    assert again.test_accuracy == trained.test_accuracy
    np.testing.assert_array_equal(again.params["params"]["head"]["kernel"], trained.params["params"]["head"]["kernel"])
    monkeypatch.undo()
    # A changed recipe has another fingerprint and trains a classifier of its own beside the first.
    changed = dataclasses.replace(SMOKE, seed=1)
    assert changed.fingerprint() != SMOKE.fingerprint()
    other = feature_classifier.load_or_train(changed, cache_root=root)
    assert other.directory != trained.directory and os.path.isdir(trained.directory)
    # Same recipe in a fresh cache: the same parameters, bit for bit.
    fresh = feature_classifier.load_or_train(SMOKE, cache_root=tmp_path)
    for a, b in zip(*(jax_leaves(c.params) for c in (fresh, trained))):
        np.testing.assert_array_equal(a, b)


def jax_leaves(tree):
    import jax
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(tree)]


def test_a_damaged_classifier_cache_is_retrained_with_a_warning(tmp_path, caplog):
    first = feature_classifier.load_or_train(SMOKE, cache_root=tmp_path)
    params = os.path.join(first.directory, "params.msgpack")
    with open(params, "r+b") as f:  # truncate the parameters for real
        f.truncate(os.path.getsize(params) // 2)
    with caplog.at_level("INFO", logger="absl"):  # whatever verbosity an earlier test left
        again = feature_classifier.load_or_train(SMOKE, cache_root=tmp_path)
    assert "is damaged" in caplog.text and "training it again" in caplog.text
    total = SMOKE.num_train // SMOKE.batch_size * SMOKE.epochs
    assert f"training the feature classifier (once): step {total}/{total} (100%)" in caplog.text  # progress line
    assert f"feature classifier {SMOKE.fingerprint()}: test accuracy" in caplog.text
    assert again.test_accuracy == first.test_accuracy
    assert os.path.getsize(params) > 0 and json.load(open(os.path.join(first.directory, "meta.json")))


# ------------------------------------------------------------ evaluate ----

def _smoke_run(workdir, **overrides):
    config = base.get_config("smoke")
    config.update(overrides)
    train_and_evaluate(config, str(workdir))
    return str(workdir)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # dead ReLU units of the smoke classifier
def test_evaluate_reports_sample_quality_of_a_fashion_mnist_run(tmp_path):
    workdir = _smoke_run(tmp_path / "vae", dataset="fashion_mnist", num_train_steps=10)
    result = subprocess.run(
        [sys.executable, "-m", "aejax.evaluate", f"--workdir={workdir}", "--num_importance_samples=0",
         "--noclustering", "--num_quality_samples=300", "--feature_classifier=smoke", "--max_examples=100"],
        cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(os.path.join(workdir, "eval.json")))
    metrics, about = report["metrics"], report["sample_quality"]
    assert about["num_samples"] == about["num_test_images"] == 300
    assert about["classifier"]["fingerprint"] == SMOKE.fingerprint()
    assert "fd_fmnist" in result.stdout and "sample quality: 300 samples vs 300 test images" in result.stdout
    # The same numbers from the restored model's own samples, with scipy's matrix square root.
    import aejax
    classifier = feature_classifier.load_or_train(SMOKE)
    fake = classifier.features(sample_quality.draw_samples(aejax.load(workdir), 300, seed=0))
    real = classifier.features(load_split("fashion_mnist", "test")["image"][:300])
    (mu1, c1), (mu2, c2) = sample_quality.gaussian_fit(fake), sample_quality.gaussian_fit(real)
    fd = np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * np.real(scipy.linalg.sqrtm(c1 @ c2)))
    assert metrics["fd_fmnist"] == pytest.approx(fd, rel=1e-4)
    # Precision/recall with scipy's distance matrices (the k-th neighbour: index k of a sorted row, self first).
    dist = scipy.spatial.distance.cdist
    radius_real, radius_fake = (np.sort(dist(x, x), axis=1)[:, 3] for x in (real, fake))
    precision = np.mean(np.any(dist(fake, real) <= radius_real[None, :], axis=1))
    recall = np.mean(np.any(dist(real, fake) <= radius_fake[None, :], axis=1))
    assert (metrics["precision_fmnist"], metrics["recall_fmnist"]) == pytest.approx((precision, recall), abs=1 / 300)
    assert 0 <= metrics["precision_fmnist"] <= 1 and 0 <= metrics["recall_fmnist"] <= 1


def test_sample_quality_is_skipped_with_a_note_on_other_datasets(tmp_path, caplog):
    workdir = _smoke_run(tmp_path / "digits", num_train_steps=10)
    options = EvalOptions(num_importance_samples=0, clustering=False, num_quality_samples=50,
                          feature_classifier="smoke")
    with caplog.at_level("INFO", logger="absl"):  # whatever verbosity an earlier test left
        report = evaluate_run(workdir, options=options)
    assert not {"fd_fmnist", "precision_fmnist", "recall_fmnist"} & set(report["metrics"])
    assert "skipped: it is measured on fashion_mnist only, this run is on digits" in report["sample_quality"]["note"]
    assert report["sample_quality"]["note"] in caplog.text


def test_the_evaluate_flags_set_the_sample_quality_options():
    from aejax.core.errors import ConfigError
    from aejax.evaluation.evaluate_run import options_from_args
    assert EvalOptions().num_quality_samples == 10_000 and EvalOptions().feature_classifier == "default"
    options = options_from_args(["--num_quality_samples=0", "--feature_classifier=smoke"])
    assert options.num_quality_samples == 0 and options.feature_classifier == "smoke"
    with pytest.raises(ConfigError, match="feature_classifier"):
        options_from_args(["--feature_classifier=inception"])
