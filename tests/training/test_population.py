"""Populations: runs that differ only in numbers, trained as one vmapped program, equal to their separate runs."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import aejax
from aejax.core.errors import ConfigError
from aejax.objectives import vae as vae_objective
from aejax.training import checkpoint
from aejax.training.loop import train_and_evaluate
from aejax.training.population import MemberConfig, split_into_populations
from aejax.training.population_run import train_population
from aejax.training.writers import read_metrics
from experiments import beta_vae_dsprites, vae

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, JAX_PLATFORMS="cpu")
# Vectorized (one vmapped program, the default on accelerators), a batched matmul may round differently from
# the unbatched one: members follow their separate runs to float tolerance (measured ≤ 2e-7 after 20-40 steps;
# training amplifies it: README). Side by side (the default on a CPU) they are the separate runs, bit for bit.
TOLERANCE = 1e-5


def smoke(**changes):
    config = vae.get_config("smoke")
    config.update(dict(num_train_steps=20, log_every_steps=5, eval_every_steps=10, checkpoint_every_steps=10))
    config.update(changes)
    return config


def leaves(workdir):
    return jax.tree_util.tree_leaves(aejax.load(workdir).params)


def max_difference(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


@pytest.mark.parametrize("vectorize", [False, True], ids=["side_by_side", "vectorized"])
def test_members_follow_their_separate_runs(tmp_path, vectorize):
    configs = [smoke(beta=1.0, seed=0), smoke(beta=4.0, seed=1, learning_rate=3e-3, kl_warmup_steps=10)]
    workdirs = [str(tmp_path / f"member{i}") for i in range(2)]
    results = train_population(configs, workdirs, vectorize=vectorize)
    assert [r["step"] for r in results] == [20, 20] and all(r["error"] is None for r in results)
    for config, workdir in zip(configs, workdirs):
        alone = str(tmp_path / f"alone_{os.path.basename(workdir)}")
        train_and_evaluate(config, alone)
        if vectorize:
            assert 0 < max_difference(leaves(workdir), leaves(alone)) < TOLERANCE
        else:
            for x, y in zip(leaves(workdir), leaves(alone)):
                np.testing.assert_array_equal(x, y)
        # The member's workdir is what its separate run writes.
        assert json.load(open(os.path.join(workdir, "config.json"))) == \
            json.load(open(os.path.join(alone, "config.json")))
        assert [r["step"] for r in read_metrics(workdir)] == [r["step"] for r in read_metrics(alone)]
        assert checkpoint.Checkpointer(workdir, read_only=True).all_steps() == [10, 20]
        assert sorted(os.listdir(os.path.join(workdir, "figures"))) == \
            sorted(os.listdir(os.path.join(alone, "figures")))
    # Different β, learning rate and warm-up really reached the members.
    assert max_difference(leaves(workdirs[0]), leaves(workdirs[1])) > 1e-3


def test_runs_split_where_a_value_sets_a_shape_or_a_branch():
    configs = [smoke(beta=1.0), smoke(beta=4.0), smoke(latent_dim=2), smoke(seed=3, learning_rate=1e-2),
               smoke(warmup_steps=5), smoke(hidden_dims=(16,)), smoke(batch_size=16), smoke(kl_warmup_steps=7)]
    assert split_into_populations(configs) == [[0, 1, 3, 7], [2], [4], [5], [6]]


def test_a_population_that_cannot_share_a_program_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot train as one program"):
        train_population([smoke(), smoke(latent_dim=2)], [str(tmp_path / "a"), str(tmp_path / "b")])


def test_the_objectives_read_swept_numbers_traced():
    config = vae.get_config("smoke")
    values = {"beta": jnp.asarray(4.0), "kl_warmup_steps": jnp.asarray(10)}
    weights = jax.vmap(lambda beta, warmup, step: vae_objective.kl_weight(
        MemberConfig(config, {"beta": beta, "kl_warmup_steps": warmup}), step))(
        jnp.asarray([4.0, 2.0, 3.0]), jnp.asarray([10, 0, 4]), jnp.asarray([5, 5, 8]))
    np.testing.assert_allclose(weights, [4.0 * 0.5, 2.0, 3.0])
    assert MemberConfig(config, values).get("beta") is values["beta"] and "beta" in MemberConfig(config, values)


@pytest.mark.parametrize("vectorize", [False, True], ids=["side_by_side", "vectorized"])
def test_members_standing_at_different_steps_catch_up_bit_equal(tmp_path, vectorize):
    """A kill between two members' saves leaves them one checkpoint apart; the rerun ends where an
    uninterrupted population ends, bit for bit."""
    configs = [smoke(num_train_steps=30, seed=s) for s in (0, 1)]
    whole = [str(tmp_path / f"whole{i}") for i in range(2)]
    train_population(configs, whole, vectorize=vectorize)
    parts = [str(tmp_path / f"part{i}") for i in range(2)]
    train_population([smoke(num_train_steps=20, seed=s) for s in (0, 1)], parts, vectorize=vectorize)
    shutil.rmtree(os.path.join(parts[1], "checkpoints", "20"))   # member 1's last save never happened
    train_population(configs, parts, vectorize=vectorize)
    for a, b in zip(whole, parts):
        for x, y in zip(leaves(a), leaves(b)):
            np.testing.assert_array_equal(x, y)
        assert [r["step"] for r in read_metrics(a)] == [r["step"] for r in read_metrics(b)]


def test_a_member_whose_loss_diverges_stops_and_the_others_go_on(tmp_path):
    workdirs = [str(tmp_path / "fine"), str(tmp_path / "diverges")]
    results = train_population([smoke(), smoke(learning_rate=1e30)], workdirs)
    assert results[0]["error"] is None and results[0]["step"] == 20
    assert "is nan" in results[1]["error"] or "is inf" in results[1]["error"]
    assert checkpoint.Checkpointer(workdirs[1], read_only=True).all_steps() in ([], [10])
    assert checkpoint.Checkpointer(workdirs[0], read_only=True).all_steps() == [10, 20]


@pytest.mark.slow
def test_dsprites_population_evaluates_like_separate_runs(tmp_path, monkeypatch):
    """Vmapped importance sampling and shared disentanglement encoder passes give each member's own report."""
    from aejax.evaluation import factor_scores
    from aejax.evaluation.evaluate_run import EvalOptions, evaluate_run
    from aejax.evaluation.population_eval import evaluate_population
    monkeypatch.setattr(factor_scores, "DEFAULT_SIZES", {
        "beta_vae_score": dict(batch_size=16, num_train=100, num_eval=50),
        "factor_vae_score": dict(batch_size=16, num_train=100, num_eval=50, num_variance_estimate=1000),
        "mutual_info_gap": dict(num_samples=2000),
        "dci_disentanglement": dict(num_train=1000, num_test=500, n_estimators=20),
        "sap_score": dict(num_train=1000, num_test=500),
        "modularity_explicitness": dict(num_train=1000, num_test=500)})
    configs = []
    for beta in (1.0, 4.0):
        config = beta_vae_dsprites.get_config("smoke")
        config.update(dict(beta=beta, num_train_steps=10, eval_every_steps=10, checkpoint_every_steps=10))
        configs.append(config)
    workdirs = [str(tmp_path / f"beta{i}") for i in range(2)]
    train_population(configs, workdirs)
    options = EvalOptions(num_importance_samples=3, clustering=False)
    shared = evaluate_population(workdirs, None, options)
    for workdir, report in zip(workdirs, shared):
        alone = evaluate_run(workdir, None, options)
        assert set(report["metrics"]) == set(alone["metrics"])
        assert any(k.startswith("disentanglement/") for k in report["metrics"])
        for name, value in alone["metrics"].items():
            # Boosted trees turn last-bit differences of the codes into small ones of their importances;
            # an SVM or logistic regression may flip a prediction or two.
            tolerance = 3e-3 if name.startswith(("disentanglement/dci", "disentanglement/sap",
                                                  "disentanglement/explicitness")) else 1e-4
            assert report["metrics"][name] == pytest.approx(value, rel=1e-4, abs=tolerance), name
        assert json.load(open(os.path.join(workdir, "eval.json")))["metrics"] == report["metrics"]


SWEEP = ["experiments/vae.py:smoke", "RUNS", "beta=1,4", "seed=0,1"]
SWEEP_FLAGS = ["--", "--config.num_train_steps=200", "--config.log_every_steps=10",
               "--config.eval_every_steps=100", "--config.checkpoint_every_steps=10",
               "--num_importance_samples=5", "--noclustering"]


@pytest.mark.slow
def test_kill_9_of_a_population_then_rerun_equals_an_uninterrupted_population(tmp_path):
    def command(runs):
        args = [a.replace("RUNS", str(runs)) for a in SWEEP]
        return [sys.executable, "-m", "aejax.sweep", "run", *args, "--population", "--parallel=1", *SWEEP_FLAGS]

    reference, killed = tmp_path / "reference", tmp_path / "killed"
    subprocess.run(command(reference), cwd=REPO, env=ENV, check=True, capture_output=True)
    process = subprocess.Popen(command(killed), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoints = killed / "beta=4__seed=1" / "checkpoints"
    deadline = time.time() + 180
    while time.time() < deadline and not (checkpoints.is_dir() and len(os.listdir(checkpoints)) >= 2):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)   # the sweep and its population process
    process.wait()
    assert 0 < max(checkpoint.Checkpointer(str(killed / "beta=4__seed=1"), read_only=True).all_steps()) < 200
    rerun = subprocess.run(command(killed), cwd=REPO, env=ENV, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout[-2000:]
    for name in ("beta=1__seed=0", "beta=1__seed=1", "beta=4__seed=0", "beta=4__seed=1"):
        for x, y in zip(leaves(str(reference / name)), leaves(str(killed / name))):
            np.testing.assert_array_equal(x, y)
        assert os.path.exists(killed / name / "eval.json")
    again = subprocess.run(command(killed), cwd=REPO, env=ENV, capture_output=True, text=True, check=True)
    assert "1 skipped" in again.stdout
    # The members' workdirs are ordinary runs to the other commands.
    for tool in (["aejax.inspect", "--num_images=16", "--grid_size=4", "--noumap"],):
        subprocess.run([sys.executable, "-m", tool[0], f"--workdir={killed / 'beta=4__seed=1'}", *tool[1:]],
                       cwd=REPO, env=ENV, check=True, capture_output=True)
    assert os.path.exists(killed / "beta=4__seed=1" / "inspect" / "index.html")
    summary = subprocess.run([sys.executable, "-m", "aejax.sweep_summary", str(killed)], cwd=REPO, env=ENV,
                             check=True, capture_output=True, text=True)
    assert "| 4 | 2 |" in summary.stdout


_MESH = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    import aejax
    from aejax.training.population_run import train_population
    from experiments import vae
    assert jax.device_count() == 8
    root = sys.argv[1]
    def smoke(**changes):
        config = vae.get_config("smoke")
        config.update(dict(num_train_steps=10, log_every_steps=5, eval_every_steps=10, checkpoint_every_steps=10))
        config.update(changes)
        return config
    out = {}
    for vectorize in (False, True):
        for devices in (1, 8):
            dirs = [f"{root}/{vectorize}{devices}/{b}" for b in (1, 4)]
            train_population([smoke(beta=1.0, num_devices=devices), smoke(beta=4.0, num_devices=devices)], dirs,
                             vectorize=vectorize)
            out[vectorize, devices] = [jax.tree_util.tree_leaves(aejax.load(d).params) for d in dirs]
    print(json.dumps(max(float(np.max(np.abs(a - b))) for v in (False, True)
                         for m1, m8 in zip(out[v, 1], out[v, 8]) for a, b in zip(m1, m8))))
""")


@pytest.mark.slow
def test_a_population_splits_each_members_batch_over_a_data_mesh(tmp_path):
    result = subprocess.run([sys.executable, "-c", _MESH, str(tmp_path)], cwd=REPO,
                            env=dict(ENV, JAX_NUM_CPU_DEVICES="8"), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) < TOLERANCE
