"""Command-line plumbing: a mistyped config key in one line, the default workdir of a run."""
import errno
import os
import re
import subprocess
import sys

import pytest

from aejax.core import cli
from aejax.core.files import atomic_write

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _main(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "aejax.main", *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO), timeout=300)


def test_a_mistyped_config_key_names_the_close_one_in_one_line(tmp_path):
    result = _main("--config=experiments/beta_vae.py:smoke", f"--workdir={tmp_path}", "--config.bata=4")
    assert result.returncode == 2
    assert result.stderr == "error: unknown config key 'bata'; did you mean 'beta'?\n"
    assert not os.path.exists(tmp_path / "checkpoints")


def test_an_unknown_key_with_no_close_one_lists_the_keys(tmp_path):
    result = _main("--config=experiments/beta_vae.py:smoke", f"--workdir={tmp_path}", "--config.zzqqx=4")
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown config key 'zzqqx'; the keys are: activation, ")
    assert result.stderr.count("\n") == 1 and "beta, " in result.stderr


def test_unknown_key_message_walks_nested_keys():
    import ml_collections
    config = ml_collections.ConfigDict({"beta": 1.0, "optim": {"learning_rate": 1e-3}})
    assert cli.unknown_key_message(["--config.optim.learnig_rate=2"], config) == \
        "unknown config key 'optim.learnig_rate'; did you mean 'optim.learning_rate'?"
    assert cli.unknown_key_message(["--config.optim.learning_rate=2", "--config.beta", "3"], config) is None


@pytest.mark.parametrize("argv, expected", [
    (["--config=experiments/beta_vae.py"], "runs/beta_vae"),
    (["--config=/abs/experiments/beta_vae.py:smoke"], "runs/beta_vae-smoke"),
    # Sorted by key: the same overrides in another order resume the same run.
    (["--config=experiments/vae.py", "--config.latent_dim=2", "--config.beta=8"], "runs/vae__beta=8__latent_dim=2"),
    (["--config=experiments/vae.py", "--config.beta", "8"], "runs/vae__beta=8"),
    (["--config=experiments/vae.py", "--config.hidden_dims=(512, 256)", "--config.data_dir=/x/y"],
     "runs/vae__data_dir=-x-y__hidden_dims=(512,-256)"),
])
def test_the_default_workdir_is_named_by_the_config_and_its_overrides(argv, expected):
    assert cli.default_workdir(argv) == expected


def test_a_long_default_workdir_name_is_cut_with_a_hash_of_the_whole():
    argv = ["--config=experiments/vae.py", *[f"--config.key{i}={'x' * 30}" for i in range(6)]]
    name = os.path.basename(cli.default_workdir(argv))
    other = os.path.basename(cli.default_workdir([*argv[:-1], f"--config.key5={'y' * 30}"]))
    assert len(name) <= 120 and name.startswith("vae__key0=") and name != other


def test_the_documented_command_without_workdir_runs_and_the_same_command_resumes(tmp_path):
    """`python -m aejax.main --config=experiments/X.py` as the README writes it, from any directory."""
    config = os.path.join(REPO, "experiments", "beta_vae.py") + ":smoke"
    first = _main(f"--config={config}", "--config.seed=3", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    workdir = tmp_path / "runs" / "beta_vae-smoke__seed=3"
    assert "workdir runs/beta_vae-smoke__seed=3 (the default for this config" in first.stderr
    assert (workdir / "checkpoints" / "20").is_dir() and (workdir / "metrics.jsonl").is_file()
    again = _main(f"--config={config}", "--config.seed=3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from the checkpoint at step 20" in again.stderr
    assert os.listdir(tmp_path / "runs") == ["beta_vae-smoke__seed=3"]


def test_a_full_disk_met_anywhere_in_a_command_is_one_line_naming_the_file(tmp_path, capsys):
    path = str(tmp_path / "sub" / "eval.json")  # its folder is missing: the free space is of the nearest one
    with pytest.raises(SystemExit) as exit_info:
        with cli.one_line_errors():
            raise OSError(errno.ENOSPC, "No space left on device", path)
    assert exit_info.value.code == 2
    line = capsys.readouterr().err.strip()
    assert re.fullmatch(rf"error: writing {path} failed: no space left on device \(\d+\.\d MiB free in "
                        rf"{tmp_path}\); free some space and rerun the same command", line), line
    with pytest.raises(PermissionError):  # any other OSError is not this one's to explain
        with cli.one_line_errors():
            raise PermissionError(errno.EACCES, "Permission denied", path)


def test_atomic_write_names_its_file_in_a_full_disk_error(tmp_path, monkeypatch):
    real_fdopen = os.fdopen

    def full(handle, mode):
        f = real_fdopen(handle, mode)
        f.write = lambda text: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device"))
        return f
    monkeypatch.setattr(os, "fdopen", full)
    with pytest.raises(OSError) as error:
        atomic_write(str(tmp_path / "eval.json"), "{}")
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(tmp_path / "eval.json")
    assert os.listdir(tmp_path) == []  # nor a temporary file left behind
