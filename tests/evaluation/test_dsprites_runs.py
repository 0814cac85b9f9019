"""dSprites runs: β-TCVAE and FactorVAE train, evaluate on the declared eval split, and get scored."""
import json
import os
import subprocess
import sys
import types

import ml_collections
import numpy as np
import pytest

import aejax
from aejax import data
from aejax.data import dsprites
from aejax.evaluation import factor_scores as disentanglement_eval
from aejax.training.loop import train_and_evaluate
from aejax.training.state import abstract_train_state, shape_signature
from aejax.training.writers import read_metrics
from experiments import beta_vae_dsprites, factor_vae_dsprites, tcvae_dsprites

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Seconds-sized metric samples (the defaults take a minute or two).
TINY_SIZES = dict(
    beta_vae_score=dict(batch_size=8, num_train=50, num_eval=30),
    factor_vae_score=dict(batch_size=16, num_train=60, num_eval=40, num_variance_estimate=500),
    mutual_info_gap=dict(num_samples=1_000),
    dci_disentanglement=dict(num_train=500, num_test=200, n_estimators=10),
    sap_score=dict(num_train=500, num_test=200),
    modularity_explicitness=dict(num_train=500, num_test=200),
)


def smoke(experiment, **overrides):
    config = experiment.get_config("smoke")
    config.architecture = "mlp"  # "conv" arrives with issue 3; the code paths are the same
    config.num_train_steps, config.eval_every_steps, config.checkpoint_every_steps = 40, 40, 40
    config.log_every_steps = 10
    for key, value in overrides.items():
        config[key] = value
    return config


def _train(experiment, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp(experiment.__name__.split(".")[-1]))
    return workdir, train_and_evaluate(smoke(experiment), workdir)


@pytest.fixture(scope="module")
def tcvae_run(tmp_path_factory):
    return _train(tcvae_dsprites, tmp_path_factory)


@pytest.fixture(scope="module")
def factor_vae_run(tmp_path_factory):
    return _train(factor_vae_dsprites, tmp_path_factory)


@pytest.mark.parametrize("name", ["tcvae_run", "factor_vae_run"])
def test_training_lowers_the_loss_and_reports_the_decomposition(request, name):
    workdir, final = request.getfixturevalue(name)
    losses = [r["train/loss"] for r in read_metrics(workdir) if "train/loss" in r]
    assert len(losses) == 4 and losses[-1] < losses[0] - 100  # nats per 64x64 image
    config = aejax.load(workdir).config
    assert config.dataset == "dsprites_small" and config.num_train_examples == 11_520
    assert "total_correlation" in final
    if config.model == "tcvae":  # MI + TC + dim-KL is the Monte Carlo KL: near the analytic one
        parts = final["mutual_info"] + final["total_correlation"] + final["dim_kl"]
        assert parts == pytest.approx(final["kl"], rel=0.1, abs=0.5)
    else:
        assert 0.0 <= final["discriminator_accuracy"] <= 1.0


def test_a_trained_run_is_scored_on_the_factors(factor_vae_run):
    workdir, _ = factor_vae_run  # the VAE sits inside a bigger params tree: code() must still find it
    scores = disentanglement_eval.disentanglement_metrics(aejax.load(workdir), seed=0, **TINY_SIZES)
    assert {k.split("/")[1] for k in scores} == {"beta_vae", "factor_vae", "mig", "dci", "sap",
                                                   "modularity", "explicitness"}
    assert all(k.startswith("disentanglement/") and np.isfinite(v) for k, v in scores.items())
    assert 0.0 <= scores["disentanglement/mig/score"] <= 1.0


def _stub(code):
    return types.SimpleNamespace(config=ml_collections.ConfigDict({"dataset": "dsprites_small"}), code=code)


def _centroid_code(images):
    """Position and size read off the pixels: a representation that captures pos_x, pos_y, scale."""
    on = images[..., 0].astype(np.float64) / 255
    ys, xs = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    area = on.sum(axis=(1, 2)) + 1e-9
    noise = np.random.default_rng(len(images)).normal(size=(len(images), 2))
    return np.column_stack([(on * xs).sum((1, 2)) / area, (on * ys).sum((1, 2)) / area, np.sqrt(area), noise])


def test_observations_match_the_factors_the_metrics_sample():
    """Codes computed from the rendered pixels score well only if images and factors agree."""
    informed = disentanglement_eval.disentanglement_metrics(_stub(_centroid_code), seed=0, **TINY_SIZES)
    blind = disentanglement_eval.disentanglement_metrics(
        _stub(lambda x: np.random.default_rng(len(x)).normal(size=(len(x), 5))), seed=0, **TINY_SIZES)
    # pos_x and pos_y are read exactly and scale partly: 2-3 of 5 factors, against chance.
    assert informed["disentanglement/mig/score"] > 0.3 > blind["disentanglement/mig/score"] + 0.2
    assert informed["disentanglement/factor_vae/eval_accuracy"] > 0.5
    assert blind["disentanglement/factor_vae/eval_accuracy"] < 0.4


def test_datasets_without_factors_give_none():
    stub = types.SimpleNamespace(config=ml_collections.ConfigDict({"dataset": "digits"}), code=None)
    assert disentanglement_eval.disentanglement_metrics(stub, seed=0) is None


def test_unknown_sizes_are_refused():
    with pytest.raises(TypeError, match="unknown metrics"):
        disentanglement_eval.disentanglement_metrics(_stub(_centroid_code), seed=0, mig={"num_samples": 5})
    with pytest.raises(ValueError, match="METRIC.KEY=VALUE"):
        disentanglement_eval.parse_sizes(["mutual_info_gap.num_sample=5"])
    assert disentanglement_eval.parse_sizes(["dci_disentanglement.estimator=random_forest",
                                             "mutual_info_gap.num_samples=5"]) == {
        "dci_disentanglement": {"estimator": "random_forest"}, "mutual_info_gap": {"num_samples": 5}}


def test_eval_split_of_dsprites_is_a_fixed_subset_of_train():
    info = data.dataset_info("dsprites_small")
    assert (info.eval_split, info.eval_subset) == ("train", 2_000)
    assert data.eval_split_of("digits") == ("test", 0) and data.eval_split_of("some_catalog_name") == ("test", 0)
    evaluation = data.load_eval_split("dsprites_small")
    indices = data.eval_subset_indices(11_520, 2_000)
    assert len(np.unique(indices)) == 2_000 and np.all(np.diff(indices) > 0)
    np.testing.assert_array_equal(indices, data.eval_subset_indices(11_520, 2_000))  # fixed
    grid = dsprites.DSPRITES_SMALL_GRID
    np.testing.assert_array_equal(evaluation["factors"], grid.factors(indices))
    np.testing.assert_array_equal(evaluation["image"][:50], grid.render(grid.factors(indices[:50])))


def test_beta_vae_dsprites_config_is_the_documented_one():
    config = beta_vae_dsprites.get_config()
    assert (config.model, config.architecture, config.dataset, config.likelihood, config.binarize) == (
        "vae", "mlp", "dsprites", "bernoulli", "none")
    assert (config.latent_dim, config.batch_size, config.learning_rate) == (10, 64, 5e-4)
    assert config.hidden_dims == (1200, 1200)  # Higgins et al. 2017's dSprites MLP
    assert config.num_train_steps == beta_vae_dsprites.NUM_TRAIN_STEPS
    assert tcvae_dsprites.get_config().model == "tcvae" and factor_vae_dsprites.get_config().model == "factor_vae"
    assert factor_vae_dsprites.get_config().discriminator_hidden_dims == (1000,) * 6
    smoke_config = beta_vae_dsprites.get_config("smoke")
    assert smoke_config.dataset == "dsprites_small" and smoke_config.num_train_steps == 20
    assert not config.scan_steps and config.eval_every_steps == config.num_train_steps
    # The documented switch to the Burgess et al. (2018) encoder: 4 convs of 32 4x4 filters,
    # stride 2 (64 → 4), dense 256, 256.
    config.architecture, config.hidden_dims, config.image_shape = "conv", (256, 256), (64, 64, 1)
    shapes = shape_signature(abstract_train_state(config).params)
    conv = sorted((p, s) for p, s in shapes.items() if "conv_" in p and "kernel" in p and "encoder" in p)
    assert [s for _, s in conv] == [[4, 4, 1, 32], [4, 4, 32, 32], [4, 4, 32, 32], [4, 4, 32, 32]]
    dense = [s for p, s in shapes.items() if "encoder" in p and "dense_" in p and "kernel" in p]
    assert [4 * 4 * 32, 256] in dense and [256, 256] in dense


@pytest.mark.slow
def test_cli_merges_into_eval_json(tcvae_run):
    workdir, _ = tcvae_run
    with open(os.path.join(workdir, "eval.json"), "w") as f:
        json.dump({"eval/elbo": -1.5}, f)
    sizes = [f"--size={m}.{k}={v}" for m, kw in TINY_SIZES.items() for k, v in kw.items()]
    result = subprocess.run([sys.executable, "-m", "aejax.disentanglement_eval", f"--workdir={workdir}", *sizes],
                            cwd=REPO, capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert result.returncode == 0, result.stderr
    merged = json.load(open(os.path.join(workdir, "eval.json")))
    assert merged["eval/elbo"] == -1.5 and "disentanglement/mig/score" in merged
    assert "disentanglement/mig/score" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "aejax.disentanglement_eval", f"--workdir={workdir}",
                          "--size=nope.x=1"], cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert bad.returncode == 2 and "METRIC.KEY=VALUE" in bad.stderr and "Traceback" not in bad.stderr


def test_evaluate_adds_the_disentanglement_metrics_on_the_declared_split(tcvae_run, monkeypatch):
    from aejax.evaluation import evaluate_run as evaluation
    workdir, _ = tcvae_run
    monkeypatch.setattr(disentanglement_eval, "DEFAULT_SIZES", TINY_SIZES)
    report = evaluation.evaluate_run(workdir, options=evaluation.EvalOptions(
        num_importance_samples=2, clustering=False))
    assert report["split"] == "train" and report["num_examples"] == data.eval_split_of("dsprites_small")[1]
    for name in ("beta_vae/eval_accuracy", "factor_vae/eval_accuracy", "mig/score", "dci/disentanglement",
                 "sap/score", "modularity/score", "explicitness/score"):
        assert 0.0 <= report["metrics"][f"disentanglement/{name}"] <= 1.0
