"""Resuming with a changed config: what changes the computation is refused unless allowed, and recorded."""
import json
import os
import subprocess
import sys

import pytest

import aejax
from aejax.core import optim
from aejax.core.errors import ConfigChangeError, ConfigError
from aejax.training import checkpoint, resume
from aejax.training.loop import train_and_evaluate
from aejax.training.writers import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def history(workdir):
    path = os.path.join(workdir, "config_history.jsonl")
    return [json.loads(line) for line in open(path)] if os.path.exists(path) else []


def snapshot(workdir):
    """What a refused run must leave as it was: every file's bytes, except the lock file."""
    files = {}
    for root, _, names in os.walk(workdir):
        for name in names:
            path = os.path.join(root, name)
            if name != "run.lock":
                files[os.path.relpath(path, workdir)] = open(path, "rb").read()
    return files


@pytest.fixture(scope="module")
def ten_steps(smoke, tmp_path_factory):
    """A run stopped after 10 of its steps (num_train_steps=10), to resume in copies."""
    workdir = str(tmp_path_factory.mktemp("ten"))
    train_and_evaluate(smoke(num_train_steps=10), workdir)
    return workdir


@pytest.fixture
def resumable(ten_steps, tmp_path):
    copy = str(tmp_path / "run")
    subprocess.run(["cp", "-a", ten_steps, copy], check=True)
    return copy


def test_a_change_that_alters_the_computation_is_refused_and_leaves_the_run_untouched(smoke, resumable):
    before = snapshot(resumable)
    with pytest.raises(ConfigChangeError) as error:
        train_and_evaluate(smoke(num_train_steps=20, learning_rate=2e-3, beta=4.0), resumable)
    message = str(error.value)
    assert "\n" not in message
    assert "beta: checkpoint 1.0 vs now 4.0; learning_rate: checkpoint 0.001 vs now 0.002" in message
    assert "--allow_config_change=beta,learning_rate" in message
    # num_train_steps changed too, but a constant schedule does not depend on it: not listed.
    assert "num_train_steps" not in message
    # Nothing written: no config.json rewrite, no history, no metrics, no TensorBoard file.
    assert snapshot(resumable) == before


def test_an_allowed_change_is_recorded_with_its_step(smoke, resumable):
    train_and_evaluate(smoke(num_train_steps=20, learning_rate=2e-3, log_every_steps=10),
                       resumable, allow_config_change="learning_rate")
    records = history(resumable)
    assert len(records) == 1 and records[0]["step"] == 10
    assert records[0]["changes"] == {"learning_rate": {"from": 0.001, "to": 0.002},
                                     "log_every_steps": {"from": 5, "to": 10},
                                     "num_train_steps": {"from": 10, "to": 20}}
    assert records[0]["allowed"] == ["learning_rate"]
    assert json.load(open(os.path.join(resumable, "config.json")))["learning_rate"] == 0.002
    # The next resume compares with the checkpoint written under the new value: nothing to allow.
    train_and_evaluate(smoke(num_train_steps=30, learning_rate=2e-3, log_every_steps=10), resumable)
    assert [r["step"] for r in history(resumable)] == [10, 20]
    assert set(history(resumable)[1]["changes"]) == {"num_train_steps"}


def test_keys_that_only_observe_the_run_change_freely_and_the_result_is_exact(smoke, assert_same_tree, ten_steps,
                                                                              resumable, tmp_path):
    observing = dict(log_every_steps=10, eval_every_steps=20, checkpoint_every_steps=5, keep_checkpoints=5,
                     num_figure_images=4, eval_batch_size=50, num_epochs=7)
    train_and_evaluate(smoke(num_train_steps=20, **observing), resumable)  # no allow needed
    assert set(history(resumable)[0]["changes"]) == set(observing) | {"num_train_steps"}
    assert history(resumable)[0]["allowed"] == []
    # Extending a constant-schedule run is exact: the same parameters as 20 steps in one go.
    reference = str(tmp_path / "reference")
    train_and_evaluate(smoke(num_train_steps=20), reference)
    assert_same_tree(aejax.load(reference).params, aejax.load(resumable).params)
    assert [r["step"] for r in read_metrics(resumable) if "train/loss" in r] == [5, 10, 20]


def test_a_cosine_schedule_depends_on_the_length(smoke, tmp_path):
    # The schedule's own values: the lr at step 10 of a 20-step cosine run differs from a 40-step one's.
    config = smoke(lr_schedule="cosine", learning_rate=1e-3)
    lr20, lr40 = (optim.SCHEDULES["cosine"](config, config.learning_rate, n)(10) for n in (20, 40))
    assert abs(float(lr20) - float(lr40)) > 1e-4
    assert optim.SCHEDULES["constant"](config, 1e-3, 20) == optim.SCHEDULES["constant"](config, 1e-3, 40)
    assert "cosine" in optim.LENGTH_DEPENDENT_SCHEDULES and "constant" not in optim.LENGTH_DEPENDENT_SCHEDULES
    workdir = str(tmp_path / "cosine")
    train_and_evaluate(smoke(num_train_steps=20, lr_schedule="cosine"), workdir)
    with pytest.raises(ConfigChangeError, match=r"num_train_steps: checkpoint 20 vs now 40 \(the lr_schedule "
                                                r"depends on the run's length\)"):
        train_and_evaluate(smoke(num_train_steps=40, lr_schedule="cosine"), workdir)
    train_and_evaluate(smoke(num_train_steps=40, lr_schedule="cosine"), workdir,
                       allow_config_change=["num_train_steps"])
    assert history(workdir)[0]["allowed"] == ["num_train_steps"]
    assert checkpoint.Checkpointer(workdir, read_only=True).latest_step() == 40


def test_a_target_below_the_checkpoint_is_an_error_and_equal_is_done(smoke, assert_same_tree, tmp_path):
    workdir = str(tmp_path / "run")
    train_and_evaluate(smoke(num_train_steps=20), workdir)
    with pytest.raises(ConfigError, match="config.num_train_steps=10 is below step 20, where the checkpoint"):
        train_and_evaluate(smoke(num_train_steps=10), workdir)
    before = aejax.load(workdir).params
    train_and_evaluate(smoke(num_train_steps=20), workdir)  # already there: nothing to do
    assert_same_tree(before, aejax.load(workdir).params)
    assert history(workdir) == []


def test_unknown_allowed_keys_are_refused(smoke, resumable):
    with pytest.raises(ConfigError, match="--allow_config_change names 'lerning_rate', which is not a config key"):
        train_and_evaluate(smoke(num_train_steps=20), resumable, allow_config_change="lerning_rate")


def test_the_rules_themselves(smoke):
    stored = dict(smoke(num_train_steps=10).to_dict(), image_shape=[8, 8, 1])
    assert resume.check_resume(stored, dict(stored), 10) == {}
    # Where and how the same steps run (to float tolerance: tests/training/test_parallel.py) is free.
    changed = dict(stored, num_devices=2, scan_steps=False, data_placement="stream", data_dir="/x", seed=3)
    with pytest.raises(ConfigChangeError, match="seed: checkpoint 0 vs now 3") as error:
        resume.check_resume(stored, changed, 10)
    assert "num_devices" not in str(error.value) and "scan_steps" not in str(error.value)
    assert set(resume.check_resume(stored, changed, 10, frozenset({"seed"}))) == \
        {"num_devices", "scan_steps", "data_placement", "data_dir", "seed"}
    # A derived key (another dataset's image shape) is a change like any other.
    with pytest.raises(ConfigChangeError, match=r"image_shape: checkpoint \[8, 8, 1\] vs now \[28, 28, 1\]"):
        resume.check_resume(stored, dict(stored, image_shape=[28, 28, 1]), 10)
    assert resume.parse_allowed("a, config.b,") == {"a", "b"} and resume.parse_allowed(None) == frozenset()


def test_main_passes_allow_config_change_and_refuses_in_one_line(resumable):
    def main(*flags):
        return subprocess.run(
            [sys.executable, "-m", "aejax.main", "--config=experiments/vae.py:smoke", f"--workdir={resumable}",
             "--config.num_train_steps=20", "--config.beta=2.0",
             "--config.log_every_steps=5", "--config.eval_every_steps=10", "--config.checkpoint_every_steps=10",
             *flags],
            cwd=REPO, capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    refused = main()
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("error: the checkpoint at step 10")
    assert "--allow_config_change=beta" in refused.stderr
    accepted = main("--allow_config_change=beta")
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    assert history(resumable)[0]["changes"]["beta"] == {"from": 1.0, "to": 2.0}


def test_a_run_resumed_under_another_binarisation_draw_says_so_and_records_it(smoke, tmp_path, monkeypatch):
    """A checkpoint written by a version with another per-step draw (here: a patched name) resumes, and
    config_history.jsonl records from which step the other draw was used; the next resume has nothing to say."""
    from aejax.data import batches
    workdir = str(tmp_path / "run")
    with monkeypatch.context() as patch:
        patch.setattr(batches, "TRAINING_DRAW", "an earlier draw")
        train_and_evaluate(smoke(num_train_steps=10), workdir)
    train_and_evaluate(smoke(num_train_steps=20), workdir)
    records = history(workdir)
    assert len(records) == 1 and records[0]["step"] == 10, records
    assert records[0]["changes"]["binarization_draw"] == {"from": "an earlier draw", "to": batches.TRAINING_DRAW}
    train_and_evaluate(smoke(num_train_steps=30), workdir)
    assert "binarization_draw" not in history(workdir)[-1]["changes"]
    # Metadata from before the key existed means the earlier draw; a grey-level run has no draw to change.
    assert resume.draw_changes({}, {"binarize": "dynamic"}) == {
        "binarization_draw": (batches.EARLIER_DRAW, batches.TRAINING_DRAW)}
    assert resume.draw_changes({}, {"binarize": "none"}) == {}
