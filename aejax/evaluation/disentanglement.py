"""Supervised disentanglement metrics: BetaVAE, FactorVAE, MIG, DCI, SAP, modularity and explicitness.

Each metric is a pure function of a ground-truth ``FactorSpace``, a ``represent`` function
(observations -> codes ``[N, D]``, e.g. the encoder mean) and an explicit
``np.random.Generator``, so it runs identically on a trained model or on synthetic codes.
Protocols and default sample counts follow disentanglement_lib (Locatello et al. 2019);
where we deviate it is said in the docstring. SAP, modularity and explicitness live in
``aejax.evaluation.sap_modularity``, the factor space they all share in
``aejax.evaluation.factor_space``; ``METRICS`` lists every metric.

Observations are rendered and encoded ``chunk_size`` at a time so that the large sample
counts (BetaVAE draws ``num_train * batch_size`` pairs) never sit in memory as images.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import os

import numpy as np
from scipy.stats import entropy
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score

from aejax.core import timing
from aejax.evaluation.factor_space import FactorSpace, Represent, discretize, encode, int_seed, sample_batches
from aejax.evaluation.sap_modularity import modularity_explicitness, sap_score

__all__ = ["FactorSpace", "Represent", "encode", "beta_vae_score", "factor_vae_score", "mutual_info_gap",
           "dci_disentanglement", "sap_score", "modularity_explicitness", "METRICS", "all_disentanglement_metrics"]

# ----------------------------------------------------------------------------- BetaVAE


def beta_vae_score(
    space: FactorSpace,
    represent: Represent,
    rng: np.random.Generator,
    *,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    max_iter: int = 1000,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """BetaVAE metric (Higgins et al. 2017): can a linear classifier tell which factor was held fixed?

    Each of ``num_train`` (``num_eval``) points picks a factor ``k`` uniformly, draws
    ``batch_size`` pairs of observations, each pair sharing its value of ``k`` (all other
    factors independent), and uses ``mean |z1 - z2|`` over the pairs as its feature. A logistic
    regression (sklearn, L2, C=1, unscaled features as in disentanglement_lib; ``max_iter``
    raised from sklearn's 100 so it converges) predicts ``k``; its train and eval
    accuracies are reported. Chance is ``1/K``.
    """

    def features(num_points):
        k, f1 = sample_batches(space, num_points, batch_size, rng)
        f2 = space.sample_factors(num_points * batch_size, rng).reshape(f1.shape)
        points = np.arange(num_points)
        f2[points, :, k] = f1[points, :, k]  # each pair shares its own value of factor k
        z1, z2 = (encode(space, represent, f.reshape(-1, space.num_factors), chunk_size=chunk_size) for f in (f1, f2))
        return np.abs(z1 - z2).reshape(num_points, batch_size, -1).mean(axis=1), k

    x_train, y_train = features(num_train)
    x_eval, y_eval = features(num_eval)
    clf = LogisticRegression(max_iter=max_iter).fit(x_train, y_train)
    return {
        "beta_vae/train_accuracy": float(clf.score(x_train, y_train)),
        "beta_vae/eval_accuracy": float(clf.score(x_eval, y_eval)),
    }


# ----------------------------------------------------------------------------- FactorVAE


def factor_vae_score(
    space: FactorSpace,
    represent: Represent,
    rng: np.random.Generator,
    *,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    prune_threshold: float = 0.05,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """FactorVAE metric (Kim & Mnih 2018): majority-vote classifier on the least-varying code dim.

    Code dims are normalised by their global variance (unbiased, over
    ``num_variance_estimate`` samples); dims with global std ``< prune_threshold`` are
    treated as collapsed and ignored (0.05, disentanglement_lib's study setting). Each vote
    fixes a random factor ``k`` over a batch of ``batch_size`` and votes
    ``(argmin_d Var[z_d] / Var_global[z_d], k)``. The classifier maps each active dim to the
    factor it collected most training votes for; accuracy = share of votes it gets right.
    Scale invariant apart from the pruning threshold; chance is roughly ``1/K``. With no
    active dim every score is 0.
    """

    reference = encode(space, represent, space.sample_factors(num_variance_estimate, rng), chunk_size=chunk_size)
    global_var = reference.var(axis=0, ddof=1)
    active = np.sqrt(global_var) >= prune_threshold
    num_active = int(active.sum())
    if num_active == 0:
        return {"factor_vae/train_accuracy": 0.0, "factor_vae/eval_accuracy": 0.0, "factor_vae/num_active_dims": 0.0}

    def votes(num_points):
        k, factors = sample_batches(space, num_points, batch_size, rng)
        points = np.arange(num_points)
        factors[points, :, k] = factors[points, :1, k]  # one value of factor k per batch
        z = encode(space, represent, factors.reshape(-1, space.num_factors), chunk_size=chunk_size)
        z = z[:, active].reshape(num_points, batch_size, num_active)
        dim = (z.var(axis=1, ddof=1) / global_var[active]).argmin(axis=1)
        counts = np.zeros((num_active, space.num_factors), dtype=np.int64)
        np.add.at(counts, (dim, k), 1)
        return counts

    train_votes, eval_votes = votes(num_train), votes(num_eval)
    classifier = train_votes.argmax(axis=1)
    dims = np.arange(num_active)
    return {
        "factor_vae/train_accuracy": float(train_votes[dims, classifier].sum() / num_train),
        "factor_vae/eval_accuracy": float(eval_votes[dims, classifier].sum() / num_eval),
        "factor_vae/num_active_dims": float(num_active),
    }


# ----------------------------------------------------------------------------- MIG


def mutual_info_gap(
    space: FactorSpace,
    represent: Represent,
    rng: np.random.Generator,
    *,
    num_samples: int = 10000,
    num_bins: int = 20,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """Mutual Information Gap (Chen et al. 2018), plug-in estimator as in disentanglement_lib.

    Codes of ``num_samples`` random factor draws are discretised per dim into ``num_bins``
    equal-width bins; ``I(z_d; v_k)`` is the empirical discrete MI (sklearn
    ``mutual_info_score``, nats). For each factor the gap between its most and second most
    informative dims is divided by ``H(v_k)``; MIG is the mean over factors, in ``[0, 1]``.
    The plug-in MI is biased upwards by about ``(bins-1)(|v_k|-1) / 2N``, so independent
    codes score slightly above 0. Needs ``D >= 2``.
    """
    factors = space.sample_factors(num_samples, rng)
    codes = discretize(encode(space, represent, factors, chunk_size=chunk_size), num_bins)
    if codes.shape[1] < 2:
        raise ValueError("MIG needs at least two code dimensions")
    mi = np.array([[mutual_info_score(v, z) for v in factors.T] for z in codes.T])  # [D, K]
    factor_entropy = np.array([mutual_info_score(v, v) for v in factors.T])
    top2 = -np.sort(-mi, axis=0)[:2]
    return {"mig/score": float(np.mean((top2[0] - top2[1]) / factor_entropy))}


# ----------------------------------------------------------------------------- DCI


def _importance_model(estimator: str, n_estimators: int, seed: int):
    """A fresh per-factor classifier with ``feature_importances_``.

    The forest considers every feature at every split (``max_features=None``): with the
    usual random feature subsets, splits on irrelevant dims leak importance to them and
    even a perfectly disentangled code scores only ~0.9.
    """
    if estimator == "gbt":
        return GradientBoostingClassifier(n_estimators=n_estimators, random_state=seed)
    if estimator == "random_forest":
        return RandomForestClassifier(n_estimators=n_estimators, max_features=None, min_samples_leaf=5, random_state=seed)
    raise ValueError(f"unknown DCI estimator {estimator!r}; use 'gbt' or 'random_forest'")


def _weighted_one_minus_entropy(importance: np.ndarray) -> float:
    """``sum_i rho_i (1 - H_{n}(P_i))`` over the rows ``i`` of a non-negative ``[rows, n]`` matrix.

    ``P_i`` is row ``i`` normalised, entropy in base ``n`` (so each term is in [0, 1]) and
    ``rho_i`` the row's share of the total mass.
    """
    if importance.shape[1] == 1:  # one column: every row is trivially concentrated (and base-1 entropy is undefined)
        return 1.0
    importance = importance + 1e-11  # all-zero rows become uniform (entropy 1) instead of NaN
    per_row = 1.0 - entropy(importance, base=importance.shape[1], axis=1)
    return float(np.sum(per_row * importance.sum(axis=1) / importance.sum()))


def dci_disentanglement(
    space: FactorSpace,
    represent: Represent,
    rng: np.random.Generator,
    *,
    num_train: int = 10000,
    num_test: int = 5000,
    estimator: str = "gbt",
    n_estimators: int = 100,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """DCI (Eastwood & Williams 2018): disentanglement, completeness, informativeness.

    One classifier per factor predicts its index from the codes (``num_train`` samples);
    the importance matrix ``R[d, k]`` is its impurity-based feature importance. Default:
    sklearn ``GradientBoostingClassifier`` with its default 100 trees, as in
    disentanglement_lib (10 trees raise the disentanglement of a 4,000-step dSprites
    β-VAE from 0.047 to 0.132: fewer trees spread importance less); one boosted
    classifier per factor, each with one tree per class and round, so dSprites'
    40 orientations and 32 positions cost most: ~2.5 min of CPU at 5,000 training
    points, fitted one factor per core (``estimator="random_forest"`` is the other choice). With ``P_d = R[d] / sum_k R[d, k]`` and
    ``rho_d = sum_k R[d, k] / sum R``: disentanglement ``= sum_d rho_d (1 - H_K(P_d))``;
    completeness is the same on ``R.T`` (entropy base ``D``); informativeness is the mean
    test accuracy over factors (``num_test`` samples; train accuracy reported too).
    """

    def sample(num):
        factors = space.sample_factors(num, rng)
        return encode(space, represent, factors, chunk_size=chunk_size), factors

    z_train, v_train = sample(num_train)
    z_test, v_test = sample(num_test)
    seeds = [int_seed(rng) for _ in range(space.num_factors)]

    def fit(k: int):
        model = _importance_model(estimator, n_estimators, seeds[k]).fit(z_train, v_train[:, k])
        return np.abs(model.feature_importances_), model.score(z_train, v_train[:, k]), model.score(z_test, v_test[:, k])

    # sklearn builds trees without the GIL: one thread per factor uses every core, same numbers.
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        fits = list(pool.map(fit, range(space.num_factors)))
    importance = np.stack([f[0] for f in fits], axis=1)
    train_acc, test_acc = [f[1] for f in fits], [f[2] for f in fits]
    return {
        "dci/disentanglement": _weighted_one_minus_entropy(importance),
        "dci/completeness": _weighted_one_minus_entropy(importance.T),
        "dci/informativeness": float(np.mean(test_acc)),
        "dci/train_accuracy": float(np.mean(train_acc)),
    }


# ----------------------------------------------------------------------------- all of them

# New metrics go at the end: each metric's generator is spawned by its position, so the
# earlier metrics keep their numbers for a given seed.
METRICS = (beta_vae_score, factor_vae_score, mutual_info_gap, dci_disentanglement, sap_score,
           modularity_explicitness)


def all_disentanglement_metrics(
    space: FactorSpace, represent: Represent, seed: int, *, per_metric: dict[str, dict] | None = None, **sizes
) -> dict[str, float]:
    """All the metrics (``METRICS``), each with its own independent generator spawned from ``seed``.

    ``sizes`` are keyword arguments passed to every metric that accepts them (e.g.
    ``num_train=1000`` shrinks BetaVAE, FactorVAE and DCI alike; ``chunk_size`` reaches
    all of them). ``per_metric`` maps a metric's function name (``"beta_vae_score"``, ...)
    to keyword arguments for that metric alone, which take precedence over ``sizes``
    (BetaVAE's ``num_train`` costs ``2 * batch_size`` observations per point, DCI's one).
    A keyword no metric accepts is an error, so typos do not pass silently.
    """
    accepted = {
        metric.__name__: {name for name, p in inspect.signature(metric).parameters.items() if p.kind is p.KEYWORD_ONLY}
        for metric in METRICS
    }
    per_metric = per_metric or {}
    unknown = set(sizes) - set().union(*accepted.values())
    unknown |= {name for name in per_metric if name not in accepted}
    unknown |= {f"{name}.{k}" for name, kw in per_metric.items() if name in accepted for k in set(kw) - accepted[name]}
    if unknown:
        raise TypeError(f"no disentanglement metric takes {sorted(unknown)}")
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(METRICS))]
    scores = {}
    for metric, rng in zip(METRICS, rngs):
        names = accepted[metric.__name__]
        kwargs = {k: v for k, v in sizes.items() if k in names} | dict(per_metric.get(metric.__name__, {}))
        with timing.stage(f"disentanglement: {metric.__name__}"):  # 10-30 s each for a 64x64 encoder
            scores.update(metric(space, represent, rng, **kwargs))
    return scores
