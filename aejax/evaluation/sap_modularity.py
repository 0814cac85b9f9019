"""SAP (Kumar et al. 2018) and modularity/explicitness (Ridgeway & Mozer 2018) disentanglement metrics.

Pure functions of a ``FactorSpace``, a ``represent`` function and an explicit
``np.random.Generator``, like the metrics of ``aejax.evaluation.disentanglement`` (which
registers them in its ``METRICS``). Protocols follow disentanglement_lib (Locatello et
al. 2019); deviations are said in the docstrings.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.svm import LinearSVC

from aejax.evaluation.factor_space import FactorSpace, Represent, discretize, encode

# ----------------------------------------------------------------------------- SAP


def _squared_correlation(code: np.ndarray, factor: np.ndarray) -> float:
    """R² of the linear regression of a factor on one code dim: Cov(z, v)² / (Var z · Var v); 0 for a constant dim."""
    covariance = np.cov(code, factor)
    if covariance[0, 0] <= 1e-12 or covariance[1, 1] <= 0:
        return 0.0
    return float(covariance[0, 1] ** 2 / (covariance[0, 0] * covariance[1, 1]))


def _threshold_accuracy(code: np.ndarray, factor: np.ndarray, code_test: np.ndarray, factor_test: np.ndarray) -> float:
    """Test accuracy of a linear classifier of the factor from one code dim (disentanglement_lib's LinearSVC)."""
    classifier = LinearSVC(C=0.01, class_weight="balanced")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a 1-feature SVC of an uninformative dim
        classifier.fit(code[:, None], factor)
    return float(np.mean(classifier.predict(code_test[:, None]) == factor_test))


def sap_scores(codes, factors, codes_test, factors_test, *, continuous_factors: bool) -> np.ndarray:
    """The SAP score matrix ``S[d, k]``: how well code dim ``d`` alone predicts factor ``k``."""
    num_dims, num_factors = codes.shape[1], factors.shape[1]
    scores = np.zeros((num_dims, num_factors))
    for d in range(num_dims):
        for k in range(num_factors):
            if continuous_factors:
                scores[d, k] = _squared_correlation(codes[:, d], factors[:, k])
            else:
                scores[d, k] = _threshold_accuracy(codes[:, d], factors[:, k], codes_test[:, d], factors_test[:, k])
    return scores


def top_two_gap(scores: np.ndarray) -> float:
    """Mean over factors (columns) of the gap between the best and second-best dim's score."""
    ordered = np.sort(scores, axis=0)
    return float(np.mean(ordered[-1] - ordered[-2]))


def sap_score(
    space: FactorSpace,
    represent: Represent,
    rng: np.random.Generator,
    *,
    num_train: int = 10000,
    num_test: int = 5000,
    continuous_factors: bool = False,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """Separated Attribute Predictability (Kumar et al. 2018): is each factor predicted by one dim alone?

    ``S[d, k]`` scores code dim ``d`` alone as a predictor of factor ``k``: with
    ``continuous_factors`` the R² of a linear regression (squared correlation, on the
    ``num_train`` codes); otherwise, as disentanglement_lib does on dSprites, the test
    accuracy (``num_test`` codes) of a linear SVM (sklearn ``LinearSVC``, C = 0.01,
    balanced class weights) on that dim. SAP is the mean over factors of the gap between
    the best and the second-best dim, in [0, 1]: large when each factor lives in one dim.
    A 1-D linear classifier cannot pick out the middle values of a factor with many
    ordered values, so the classification SAP of even a perfect code stays well below 1
    for such factors; the R² form reaches 1. Needs ``D >= 2``.
    """
    factors = space.sample_factors(num_train, rng)
    codes = encode(space, represent, factors, chunk_size=chunk_size)
    factors_test = space.sample_factors(num_test, rng)
    codes_test = encode(space, represent, factors_test, chunk_size=chunk_size)
    if codes.shape[1] < 2:
        raise ValueError("SAP needs at least two code dimensions")
    scores = sap_scores(codes, factors, codes_test, factors_test, continuous_factors=continuous_factors)
    return {"sap/score": top_two_gap(scores)}


# ------------------------------------------------------------------- modularity, explicitness


def modularity(mutual_info: np.ndarray) -> float:
    """Ridgeway & Mozer's modularity from ``I[d, k]`` (code dims x factors), in [0, 1].

    Per dim, θ = max_k I[d, k] and the template t keeps only that entry; the deviation
    δ_d = Σ_k (I[d, k] − t_k)² / (θ² (K − 1)) is 0 when the dim carries one factor and 1
    when it carries all equally. Modularity = mean over dims of 1 − δ_d; a dim with no
    information (θ = 0) scores 0, as in disentanglement_lib.
    """
    squared = np.square(mutual_info)
    theta_squared = squared.max(axis=1)
    deviation = (squared.sum(axis=1) - theta_squared) / np.where(theta_squared > 0, theta_squared, 1.0)
    per_dim = np.where(theta_squared > 0, 1.0 - deviation / (mutual_info.shape[1] - 1), 0.0)
    return float(np.mean(per_dim))


def _one_vs_rest_auc(classifier, codes: np.ndarray, factor: np.ndarray) -> float:
    """ROC AUC of each value of the factor against the rest, from the predicted probabilities, averaged over values."""
    probabilities = classifier.predict_proba(codes)
    values = [c for c in range(len(classifier.classes_)) if 0 < np.sum(factor == classifier.classes_[c]) < len(factor)]
    return float(np.mean([roc_auc_score(factor == classifier.classes_[c], probabilities[:, c]) for c in values]))


def modularity_explicitness(
    space: FactorSpace,
    represent: Represent,
    rng: np.random.Generator,
    *,
    num_train: int = 10000,
    num_test: int = 5000,
    num_bins: int = 20,
    max_iter: int = 1000,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """Modularity and explicitness (Ridgeway & Mozer 2018).

    Modularity (``modularity``): from the plug-in MI ``I[d, k]`` between code dims
    discretised into ``num_bins`` equal-width bins and the factors (as for MIG, on
    ``num_train`` codes); does each dim depend on one factor only? It does not ask that
    each factor be in one dim (that is compactness), and the plug-in MI's bias leaves
    codes independent of the factors well above 0.

    Explicitness: per factor, a logistic regression (sklearn, L2, C = 1, on codes
    standardised with the training mean and std) predicts the factor's value from the
    whole code; the score is the ROC AUC of each value against the rest, averaged over
    values, then over factors. 1 for a code from which every factor is linearly
    decodable, 0.5 for chance. Test (``num_test`` codes) and train AUCs are reported.
    """
    factors = space.sample_factors(num_train, rng)
    codes = encode(space, represent, factors, chunk_size=chunk_size)
    factors_test = space.sample_factors(num_test, rng)
    codes_test = encode(space, represent, factors_test, chunk_size=chunk_size)
    binned = discretize(codes, num_bins)
    mutual_info = np.array([[mutual_info_score(v, z) for v in factors.T] for z in binned.T])  # [D, K]

    mean, std = codes.mean(axis=0), codes.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    train, test = (codes - mean) / std, (codes_test - mean) / std
    train_auc, test_auc = [], []
    for k in range(space.num_factors):
        classifier = LogisticRegression(max_iter=max_iter).fit(train, factors[:, k])
        train_auc.append(_one_vs_rest_auc(classifier, train, factors[:, k]))
        test_auc.append(_one_vs_rest_auc(classifier, test, factors_test[:, k]))
    return {
        "modularity/score": modularity(mutual_info),
        "explicitness/score": float(np.mean(test_auc)),
        "explicitness/train_score": float(np.mean(train_auc)),
    }
