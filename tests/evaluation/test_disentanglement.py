"""Disentanglement metrics on a synthetic factor space whose observations are the factors.

Three representations bracket each metric: (a) the factors themselves (+ tiny noise):
maximal; (b) codes independent of the factors: chance; (c) factors 0 and 1 rotated by 45
degrees into each other, the rest identity: strictly in between for MIG and DCI.
Sample counts are reduced (see SIZES) so the file runs in seconds.
"""

import zlib

import numpy as np
import pytest

from aejax.evaluation import disentanglement as dm

FACTOR_SIZES = (3, 6, 10, 8, 8)
K = len(FACTOR_SIZES)
# 10 boosted trees for DCI (the default is 100, as in disentanglement_lib): the cases separate as clearly, faster.
SIZES = dict(num_train=2000, num_eval=1000, num_test=1000, num_samples=4000, num_variance_estimate=2000,
             n_estimators=10)
SEED = 0


def _chunk_rng(x: np.ndarray) -> np.random.Generator:
    """A generator determined by the input chunk, so representations stay pure functions."""
    return np.random.default_rng(zlib.crc32(np.ascontiguousarray(x).tobytes()))


def identity_codes(x):
    return x + 1e-3 * _chunk_rng(x).standard_normal(x.shape)


def random_codes(x):
    return _chunk_rng(x).standard_normal(x.shape)


def mixed_codes(x):
    z = identity_codes(x)
    z[:, 0], z[:, 1] = (x[:, 0] + x[:, 1]) / np.sqrt(2), (x[:, 0] - x[:, 1]) / np.sqrt(2)
    return z


SPACE = dm.FactorSpace(FACTOR_SIZES, observe=lambda f: f.astype(np.float64))
REPRESENTATIONS = {"identity": identity_codes, "random": random_codes, "mixed": mixed_codes}


@pytest.fixture(scope="module")
def scores():
    return {name: dm.all_disentanglement_metrics(SPACE, rep, SEED, **SIZES) for name, rep in REPRESENTATIONS.items()}


def test_sample_factors_uniform_in_range():
    f = SPACE.sample_factors(20000, np.random.default_rng(0))
    assert f.shape == (20000, K) and f.dtype.kind == "i"
    for k, size in enumerate(FACTOR_SIZES):
        counts = np.bincount(f[:, k], minlength=size)
        assert len(counts) == size
        np.testing.assert_allclose(counts / len(f), 1 / size, atol=0.02)


def test_keys(scores):
    assert set(scores["identity"]) == {
        "beta_vae/train_accuracy", "beta_vae/eval_accuracy",
        "factor_vae/train_accuracy", "factor_vae/eval_accuracy", "factor_vae/num_active_dims",
        "mig/score",
        "dci/disentanglement", "dci/completeness", "dci/informativeness", "dci/train_accuracy",
        "sap/score", "modularity/score", "explicitness/score", "explicitness/train_score",
    }  # fmt: skip
    assert all(isinstance(v, float) for v in scores["identity"].values())


def test_disentangled_codes_score_maximal(scores):
    s = scores["identity"]
    assert s["beta_vae/eval_accuracy"] >= 0.99
    assert s["factor_vae/eval_accuracy"] >= 0.99
    assert s["factor_vae/num_active_dims"] == K
    assert s["mig/score"] > 0.95  # plug-in MI bias keeps it just below 1
    assert s["dci/disentanglement"] > 0.99
    assert s["dci/completeness"] > 0.99
    assert s["dci/informativeness"] > 0.99
    assert s["sap/score"] > 0.3  # 1-D linear SVMs cannot pick the middle values of the ordered factors
    assert s["modularity/score"] > 0.99
    assert s["explicitness/score"] > 0.99


def test_random_codes_score_chance(scores):
    s = scores["random"]
    assert abs(s["beta_vae/eval_accuracy"] - 1 / K) < 0.06
    assert abs(s["factor_vae/eval_accuracy"] - 1 / K) < 0.06
    assert s["mig/score"] < 0.02
    assert s["dci/disentanglement"] < 0.05
    assert s["dci/completeness"] < 0.05
    chance = np.mean([1 / n for n in FACTOR_SIZES])
    assert s["dci/informativeness"] < chance + 0.05
    assert s["sap/score"] < 0.03
    assert abs(s["explicitness/score"] - 0.5) < 0.03
    assert s["modularity/score"] < 0.6  # not ~0: plug-in MI biases grow with a factor's number of values


def test_mixed_codes_score_in_between(scores):
    for key in ("mig/score", "dci/disentanglement", "dci/completeness"):
        assert scores["random"][key] + 0.2 < scores["mixed"][key] < scores["identity"][key] - 0.1, key
    # SAP (1-D linear SVMs): identity 0.33, rotated 0.15, random 0.00 with these sizes.
    assert scores["random"]["sap/score"] + 0.1 < scores["mixed"]["sap/score"] < scores["identity"]["sap/score"] - 0.1
    # A rotation loses nothing: factors stay decodable, and BetaVAE is blind to rotations.
    assert scores["mixed"]["dci/informativeness"] > 0.95
    assert scores["mixed"]["beta_vae/eval_accuracy"] > 0.95
    assert scores["mixed"]["explicitness/score"] > 0.99


def test_same_seed_same_numbers(scores):
    again = dm.all_disentanglement_metrics(SPACE, random_codes, SEED, **SIZES)
    assert again == scores["random"]
    other = dm.all_disentanglement_metrics(SPACE, random_codes, SEED + 1, **SIZES)
    assert other != scores["random"]


def test_chunking_does_not_change_results():
    kwargs = dict(num_train=200, num_eval=100, batch_size=16)
    a = dm.beta_vae_score(SPACE, identity_codes, np.random.default_rng(3), chunk_size=10**6, **kwargs)
    b = dm.beta_vae_score(SPACE, lambda x: x.copy(), np.random.default_rng(3), chunk_size=7, **kwargs)
    c = dm.beta_vae_score(SPACE, lambda x: x.copy(), np.random.default_rng(3), chunk_size=10**6, **kwargs)
    assert b == c and a["beta_vae/eval_accuracy"] == b["beta_vae/eval_accuracy"] == 1.0


def test_factor_vae_prunes_collapsed_dims():
    def with_dead_dim(x):
        return np.concatenate([identity_codes(x), np.full((len(x), 1), 0.3)], axis=1)

    s = dm.factor_vae_score(SPACE, with_dead_dim, np.random.default_rng(0), num_train=300, num_eval=300,
                            num_variance_estimate=500)  # fmt: skip
    assert s["factor_vae/num_active_dims"] == K
    assert s["factor_vae/eval_accuracy"] == 1.0
    dead = dm.factor_vae_score(SPACE, lambda x: np.zeros((len(x), 3)), np.random.default_rng(0), num_train=10,
                               num_eval=10, num_variance_estimate=50)  # fmt: skip
    assert dead == {"factor_vae/train_accuracy": 0.0, "factor_vae/eval_accuracy": 0.0, "factor_vae/num_active_dims": 0.0}


def test_dci_random_forest_estimator_orders_cases():
    def dis(rep):
        return dm.dci_disentanglement(SPACE, rep, np.random.default_rng(0), num_train=1000, num_test=500,
                                      estimator="random_forest")["dci/disentanglement"]  # fmt: skip

    assert dis(random_codes) < dis(mixed_codes) < dis(identity_codes)
    with pytest.raises(ValueError, match="estimator"):
        dm.dci_disentanglement(SPACE, identity_codes, np.random.default_rng(0), num_train=10, estimator="lasso")


def test_all_metrics_rejects_unknown_sizes():
    with pytest.raises(TypeError, match="num_trian"):
        dm.all_disentanglement_metrics(SPACE, identity_codes, 0, num_trian=10)


def test_per_metric_sizes_reach_only_their_metric(scores):
    # MIG on 500 samples instead of 4000: its score changes, the other metrics' do not.
    small_mig = dm.all_disentanglement_metrics(SPACE, random_codes, SEED, per_metric={"mutual_info_gap": {
        "num_samples": 500}}, **SIZES)
    assert small_mig["mig/score"] != scores["random"]["mig/score"]
    assert {k: v for k, v in small_mig.items() if not k.startswith("mig/")} == {
        k: v for k, v in scores["random"].items() if not k.startswith("mig/")}
    with pytest.raises(TypeError, match="mutual_info_gap.num_sample"):
        dm.all_disentanglement_metrics(SPACE, identity_codes, 0, per_metric={"mutual_info_gap": {"num_sample": 5}})
    with pytest.raises(TypeError, match="mig"):
        dm.all_disentanglement_metrics(SPACE, identity_codes, 0, per_metric={"mig": {}})


def test_factor_space_validates_sizes():
    with pytest.raises(ValueError):
        dm.FactorSpace((5,), observe=lambda f: f)
    with pytest.raises(ValueError):
        dm.FactorSpace((5, 1), observe=lambda f: f)
