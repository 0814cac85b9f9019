"""SIGTERM/SIGINT: the run finishes its chunk, saves, closes its writers and exits with one line; resume is exact."""
import os
import signal
import subprocess
import sys
import time

import pytest

import aejax
from aejax.core.errors import Interrupted
from aejax.training import checkpoint, preemption
from aejax.training.writers import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, JAX_PLATFORMS="cpu")
# 50 steps between checkpoints, 5 per chunk: a stop lands between checkpoints, and is saved anyway.
ARGS = ["--config=experiments/vae.py:smoke", "--config.num_train_steps=1000", "--config.log_every_steps=5",
        "--config.eval_every_steps=500", "--config.checkpoint_every_steps=50"]


def run(workdir, wait=True):
    command = [sys.executable, "-m", "aejax.main", f"--workdir={workdir}", *ARGS]
    if wait:
        return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("uninterrupted"))
    result = run(workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    return workdir


def wait_for_checkpoint(workdir, step, process):
    deadline = time.time() + 300
    while time.time() < deadline and not os.path.isdir(os.path.join(workdir, "checkpoints", str(step))):
        assert process.poll() is None, process.stderr.read()[-2000:]
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_saves_and_stops_then_resume_is_exact(assert_same_tree, uninterrupted, tmp_path, number):
    workdir = str(tmp_path / "run")
    process = run(workdir, wait=False)
    wait_for_checkpoint(workdir, 50, process)
    process.send_signal(number)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + number, stderr[-2000:]
    assert "Traceback" not in stderr
    # One line; the checkpoint of the step it names exists, although that step is between checkpoints.
    lines = [line for line in stderr.splitlines() if line and not line.startswith(("I1", "W1"))]
    assert len(lines) == 1, stderr[-2000:]
    stopped = checkpoint.Checkpointer(workdir, read_only=True).latest_step()
    assert lines[0] == (f"stopped by {signal.Signals(number).name} after step {stopped} of 1000: checkpoint "
                        f"saved in {workdir}/checkpoints/{stopped}; rerun the same command to resume")
    assert 50 < stopped < 1000
    # The writers were closed: the last record is the stop step's, whole.
    assert read_metrics(workdir)[-1]["step"] == stopped
    result = run(workdir)  # resume
    assert result.returncode == 0, result.stderr[-2000:]
    assert_same_tree(aejax.load(uninterrupted).params, aejax.load(workdir).params)
    assert [r["step"] for r in read_metrics(workdir) if "train/loss" in r] == \
        [r["step"] for r in read_metrics(uninterrupted) if "train/loss" in r]


def two_sigints(gap: float) -> subprocess.CompletedProcess:
    """A process under StopSignals sent SIGINT twice, `gap` seconds apart; it prints if it is still running."""
    code = ("import os, signal, time\n"
            "from aejax.training import preemption\n"
            "with preemption.StopSignals() as signals:\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n"
            f"    time.sleep({gap})\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n"
            "    time.sleep(0.3)\n"
            "print('still running, asked to stop by', signals.signal_number)\n")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=60)


def test_a_second_signal_stops_at_once_without_saving():
    result = two_sigints(0.2)
    assert result.returncode == 130 and "still running" not in result.stdout
    assert result.stderr.splitlines()[-1] == \
        "second SIGINT: stopping at once, without saving; the last checkpoint is intact"


def test_the_same_signal_twice_at_once_is_one_request():
    """A terminal's Ctrl-C reaches a sweep's run directly and again through the sweep, milliseconds apart."""
    result = two_sigints(0.01)
    assert result.returncode == 0 and "still running, asked to stop by 2" in result.stdout, result.stderr


def test_stop_signals_only_set_a_flag_and_restore_the_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with preemption.StopSignals() as signals:
        assert signals.requested() == 0
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        assert signals.requested() == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before
    error = Interrupted("stopped", signal.SIGINT)
    assert error.exit_status == 130 and Interrupted("x", signal.SIGTERM).exit_status == 143
