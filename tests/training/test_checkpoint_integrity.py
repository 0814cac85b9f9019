"""Damaged checkpoints are found, named in one line, and never trained from or loaded silently."""
import glob
import json
import os
import shutil
import subprocess
import sys
import zlib

import numpy as np
import pytest

import aejax
from aejax.core.errors import DamagedCheckpointError
from aejax.training import checkpoint, integrity
from aejax.training.loop import train_and_evaluate
from aejax.training.writers import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def thirty(smoke, tmp_path_factory):
    """Checkpoints at 10, 20, 30; and, for comparison, a run straight to 40."""
    workdir = str(tmp_path_factory.mktemp("thirty"))
    train_and_evaluate(smoke(num_train_steps=30), workdir)
    reference = str(tmp_path_factory.mktemp("forty"))
    train_and_evaluate(smoke(num_train_steps=40), reference)
    return workdir, reference


def data_files(step_dir):
    return sorted(glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True), key=os.path.getsize)


def truncate(step_dir):
    path = data_files(step_dir)[-1]
    os.truncate(path, os.path.getsize(path) // 2)


def delete_metadata(step_dir):
    os.remove(os.path.join(step_dir, "state", "_METADATA"))


def delete_state(step_dir):
    shutil.rmtree(os.path.join(step_dir, "state"))


def overwrite_4kb(step_dir):
    """4 KB of other bytes in the middle of the largest data file, in place (same size)."""
    path = data_files(step_dir)[-1]
    size = os.path.getsize(path)
    assert size > 8192
    with open(path, "r+b") as f:
        f.seek(size // 2 - 2048)
        f.write(np.random.default_rng(0).bytes(4096))
    assert os.path.getsize(path) == size


FAULTS = {"truncated data file": (truncate, "files are missing or truncated"),
          "deleted state/_METADATA": (delete_metadata, "files are missing or truncated (state/_METADATA)"),
          "deleted state/": (delete_state, "files are missing or truncated (state/_METADATA, state/_sharding"),
          "4 KB overwritten": (overwrite_4kb, "files are changed (checksums differ)")}


@pytest.fixture
def damaged(thirty, tmp_path, request):
    workdir = str(tmp_path / "run")
    shutil.copytree(thirty[0], workdir)
    inject, message = FAULTS[request.param]
    inject(os.path.join(workdir, "checkpoints", "30"))
    return workdir, message


@pytest.mark.parametrize("damaged", FAULTS, indirect=True)
def test_load_refuses_a_damaged_latest_checkpoint_and_names_the_good_ones(assert_same_tree, damaged, thirty):
    workdir, message = damaged
    with pytest.raises(DamagedCheckpointError) as error:
        aejax.load(workdir)
    text = str(error.value)
    assert "\n" not in text and f"the checkpoint at step 30 in {workdir}/checkpoints is damaged" in text
    assert message in text
    assert f"checkpoints that verify: steps 10, 20; load one with aejax.load({workdir!r}, step=20)" in text
    assert_same_tree(aejax.load(workdir, step=20).params, aejax.load(thirty[0], step=20).params)


@pytest.mark.parametrize("damaged", FAULTS, indirect=True)
def test_training_falls_back_to_the_newest_good_checkpoint_and_ends_exact(smoke, assert_same_tree, damaged, thirty,
                                                                          caplog):
    workdir, message = damaged
    train_and_evaluate(smoke(num_train_steps=40), workdir)
    assert "the checkpoint at step 30" in caplog.text and message in caplog.text
    # The damaged checkpoint is kept aside, not deleted; training redid steps 21-40 exactly.
    assert [name.split("-")[0] for name in os.listdir(os.path.join(workdir, "damaged_checkpoints"))] == ["30"]
    assert_same_tree(aejax.load(workdir).params, aejax.load(thirty[1]).params)
    steps = [r["step"] for r in read_metrics(workdir) if "train/loss" in r]
    assert steps == list(range(5, 45, 5))


def test_changed_arrays_are_found_by_their_checksums_without_the_file_list(thirty, tmp_path):
    """The end-to-end check: arrays of another step under step 30's metadata (a mixed checkpoint)."""
    workdir = str(tmp_path / "mixed")
    shutil.copytree(thirty[0], workdir)
    step30, step20 = (os.path.join(workdir, "checkpoints", s) for s in ("30", "20"))
    os.remove(os.path.join(step30, checkpoint.FILES))  # as if killed before the list was written
    shutil.rmtree(os.path.join(step30, "state"))
    shutil.copytree(os.path.join(step20, "state"), os.path.join(step30, "state"))
    with pytest.raises(DamagedCheckpointError, match=r"arrays differ from their checksums \(\.opt_state"):
        aejax.load(workdir)


def test_every_checkpoint_records_checksums_that_an_independent_crc_reproduces(thirty):
    workdir = thirty[0]
    ckpt = checkpoint.Checkpointer(workdir, read_only=True)
    meta = ckpt.metadata(30)
    model = aejax.load(workdir)
    kernel = np.asarray(model.params["params"]["decoder"]["MLP_0"]["dense_0"]["kernel"])
    header = f"{kernel.dtype.str}{kernel.shape}".encode()
    expected = f"crc32:{zlib.crc32(kernel.astype('<f4').tobytes(), zlib.crc32(header)):08x}"
    assert meta["checksums"][".params['params']['decoder']['MLP_0']['dense_0']['kernel']"] == expected
    files = json.load(open(os.path.join(workdir, "checkpoints", "30", checkpoint.FILES)))
    with open(os.path.join(workdir, "checkpoints", "30", "state", "_METADATA"), "rb") as f:
        data = f.read()
    assert files["state/_METADATA"] == [len(data), f"crc32:{zlib.crc32(data):08x}"]
    assert integrity.checksum(np.zeros(3, ">f4")) == integrity.checksum(np.zeros(3, "<f4"))


def test_a_checkpoint_without_checksums_still_loads(assert_same_tree, thirty, tmp_path, caplog):
    """Checkpoints written before this check existed: loaded, with a warning that they are unverified."""
    workdir = str(tmp_path / "old")
    shutil.copytree(thirty[0], workdir)
    step30 = os.path.join(workdir, "checkpoints", "30")
    os.remove(os.path.join(step30, checkpoint.FILES))
    meta_path = os.path.join(step30, "meta", "metadata")
    meta = json.load(open(meta_path))
    del meta["checksums"]
    json.dump(meta, open(meta_path, "w"))
    assert_same_tree(aejax.load(workdir).params, aejax.load(thirty[0]).params)
    assert "predates checksums: not verified" in caplog.text


def test_no_good_checkpoint_is_an_error_not_a_fresh_start(smoke, thirty, tmp_path):
    workdir = str(tmp_path / "all")
    shutil.copytree(thirty[0], workdir)
    for step in ("10", "20", "30"):
        delete_metadata(os.path.join(workdir, "checkpoints", step))
    with pytest.raises(DamagedCheckpointError, match="no checkpoint in .* verifies .*step 30: .*step 10: "):
        train_and_evaluate(smoke(num_train_steps=40), workdir)
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["10", "20", "30"]


def test_evaluate_names_a_damaged_checkpoint_in_one_line(thirty, tmp_path):
    workdir = str(tmp_path / "eval")
    shutil.copytree(thirty[0], workdir)
    overwrite_4kb(os.path.join(workdir, "checkpoints", "30"))
    result = subprocess.run([sys.executable, "-m", "aejax.evaluate", f"--workdir={workdir}",
                             "--num_importance_samples=0", "--noclustering"],
                            cwd=REPO, capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if not line.startswith(("I1", "W1"))]
    assert errors == [errors[0]] and errors[0].startswith("error: the checkpoint at step 30")
    assert "--step=20" in errors[0]


def test_a_checkpoint_removed_while_read_is_not_called_damaged(thirty, tmp_path):
    """aejax.load/evaluate take no lock: a run training there may rotate a checkpoint away mid-read."""
    workdir = str(tmp_path / "rotating")
    shutil.copytree(thirty[0], workdir)
    reader = checkpoint.Checkpointer(workdir, read_only=True)
    assert reader.latest_step() == 30
    shutil.rmtree(os.path.join(workdir, "checkpoints", "30"))  # keep_checkpoints at work, after the listing
    with pytest.raises(FileNotFoundError, match="the checkpoint at step 30 .* was removed while it was read"):
        reader.metadata(30)
