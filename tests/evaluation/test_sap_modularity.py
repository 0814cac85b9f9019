"""SAP, modularity and explicitness: against numpy/sklearn re-implementations and on synthetic codes.

The synthetic factor space and codes are those of test_disentanglement.py (observations
are the factors): the identity code, codes independent of the factors, and codes with
factors 0 and 1 rotated into each other, plus a code that rotates all five (standardised)
factors into every dim.
"""
import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler, label_binarize
from sklearn.svm import LinearSVC

from aejax.evaluation import disentanglement as dm
from aejax.evaluation import sap_modularity
from test_disentanglement import FACTOR_SIZES, SPACE, _chunk_rng, identity_codes, mixed_codes, random_codes

ROTATION = np.linalg.qr(np.random.default_rng(0).normal(size=(len(FACTOR_SIZES), len(FACTOR_SIZES))))[0]


def rotated_codes(x):
    """Every dim a mix of all five factors, each scaled to a unit range."""
    sizes = np.asarray(FACTOR_SIZES, np.float64)
    return ((x - (sizes - 1) / 2) / sizes) @ ROTATION + 1e-3 * _chunk_rng(x).standard_normal(x.shape)


def noisy_codes(x):
    """A small random case: 3 dims, each a noisy mix of the factors (nothing clean to find)."""
    mixing = np.array([[1.0, 0.2, 0.0], [0.3, 1.0, 0.5], [0.0, 0.1, 0.2], [0.5, 0.0, 1.0], [0.1, 0.4, 0.1]])
    return x @ mixing + _chunk_rng(x).standard_normal((len(x), 3))


SMALL = dict(num_train=600, num_test=300)


def draws(seed, n_train, n_test, represent):
    """The factors and codes the metrics draw with this seed: train, then test."""
    rng = np.random.default_rng(seed)
    f_train = rng.integers(0, FACTOR_SIZES, size=(n_train, len(FACTOR_SIZES)))
    f_test = rng.integers(0, FACTOR_SIZES, size=(n_test, len(FACTOR_SIZES)))
    return represent(f_train.astype(float)), f_train, represent(f_test.astype(float)), f_test


def reference_sap(codes, factors, codes_test, factors_test, continuous):
    score = np.zeros((codes.shape[1], factors.shape[1]))
    for d in range(codes.shape[1]):
        for k in range(factors.shape[1]):
            if continuous:
                score[d, k] = stats.linregress(codes[:, d], factors[:, k]).rvalue ** 2
            else:
                svm = LinearSVC(C=0.01, class_weight="balanced").fit(codes[:, [d]], factors[:, k])
                score[d, k] = (svm.predict(codes_test[:, [d]]) == factors_test[:, k]).mean()
    gaps = []
    for k in range(factors.shape[1]):
        best, second = sorted(score[:, k], reverse=True)[:2]
        gaps.append(best - second)
    return float(np.mean(gaps))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("continuous", [False, True])
def test_sap_matches_a_loop_reimplementation(continuous):
    got = dm.sap_score(SPACE, noisy_codes, np.random.default_rng(4), continuous_factors=continuous, **SMALL)
    expected = reference_sap(*draws(4, 600, 300, noisy_codes), continuous)
    assert got["sap/score"] == pytest.approx(expected, abs=1e-9)


def numpy_mutual_info(a, b):
    """Plug-in MI (nats) of two integer arrays from their contingency table."""
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1)
    joint /= joint.sum()
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    nonzero = joint > 0
    return float(np.sum(joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])))


def reference_modularity(codes, factors, num_bins=20):
    mi = np.zeros((codes.shape[1], factors.shape[1]))
    for d in range(codes.shape[1]):
        z = codes[:, d]
        binned = np.minimum(np.floor((z - z.min()) / (z.max() - z.min()) * num_bins), num_bins - 1).astype(int)
        for k in range(factors.shape[1]):
            mi[d, k] = numpy_mutual_info(binned, factors[:, k])
    per_dim = []
    for row in mi:
        theta = row.max()
        template = np.where(np.arange(len(row)) == row.argmax(), theta, 0.0)
        per_dim.append(1 - np.sum((row - template) ** 2) / (theta ** 2 * (len(row) - 1)))
    return float(np.mean(per_dim))


def reference_explicitness(codes, factors, codes_test, factors_test):
    scaler = StandardScaler().fit(codes)
    aucs = []
    for k in range(factors.shape[1]):
        clf = LogisticRegression(max_iter=1000).fit(scaler.transform(codes), factors[:, k])
        onehot = label_binarize(factors_test[:, k], classes=clf.classes_)
        proba = clf.predict_proba(scaler.transform(codes_test))
        aucs.append(roc_auc_score(onehot, proba, average="macro"))
    return float(np.mean(aucs))


def test_modularity_and_explicitness_match_reimplementations():
    got = dm.modularity_explicitness(SPACE, noisy_codes, np.random.default_rng(5), **SMALL)
    codes, factors, codes_test, factors_test = draws(5, 600, 300, noisy_codes)
    assert got["modularity/score"] == pytest.approx(reference_modularity(codes, factors), abs=1e-6)
    assert got["explicitness/score"] == pytest.approx(
        reference_explicitness(codes, factors, codes_test, factors_test), abs=1e-6)


def test_modularity_of_hand_made_information_matrices():
    assert sap_modularity.modularity(np.eye(3) * 0.7) == pytest.approx(1.0)             # one factor per dim
    assert sap_modularity.modularity(np.ones((2, 3))) == pytest.approx(0.0)             # every factor in every dim
    assert sap_modularity.modularity(np.array([[1.0, 0, 0], [1.0, 1.0, 1.0]])) == pytest.approx(0.5)
    assert sap_modularity.modularity(np.array([[1.0, 0.5, 0], [0, 0, 0]])) == pytest.approx(  # empty dim: 0
        (1 - 0.25 / 2) / 2)


def test_sap_r2_form_is_one_for_the_identity_and_lower_when_rotated():
    def sap(rep):
        return dm.sap_score(SPACE, rep, np.random.default_rng(0), continuous_factors=True,
                            num_train=2000, num_test=10)["sap/score"]
    identity, mixed, rotated, random = (sap(r) for r in (identity_codes, mixed_codes, rotated_codes, random_codes))
    assert identity > 0.99
    assert mixed == pytest.approx(3 / 5, abs=0.03)  # factors 0 and 1 share two dims equally: their gaps are ~0
    assert random < 0.01 and rotated < 0.5


def test_sap_ignores_the_order_of_the_dims():
    order = np.array([3, 0, 4, 1, 2])
    a = dm.sap_score(SPACE, identity_codes, np.random.default_rng(0), num_train=500, num_test=200)
    b = dm.sap_score(SPACE, lambda x: identity_codes(x)[:, order], np.random.default_rng(0), num_train=500,
                     num_test=200)
    assert a == b


def test_rotating_every_factor_into_every_dim_lowers_modularity_not_explicitness():
    def scores(rep):
        return dm.modularity_explicitness(SPACE, rep, np.random.default_rng(0), num_train=2000, num_test=1000)
    identity, rotated = scores(identity_codes), scores(rotated_codes)
    assert identity["modularity/score"] > 0.99 > 0.9 > rotated["modularity/score"]
    assert rotated["explicitness/score"] > 0.99  # a rotation keeps every factor linearly decodable
