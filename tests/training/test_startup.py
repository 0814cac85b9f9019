"""The first minutes of a run: a quiet log that ends with where the time went, each program compiled once."""
import collections
import logging
import os
import re
import struct
import subprocess
import sys
import time

import jax.monitoring
import pytest

from aejax.training.loop import train_and_evaluate
from aejax.training.progress import Progress
from experiments import beta_vae

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_a_smoke_run_log_is_quiet_and_ends_with_its_time_breakdown(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "JAX_PLATFORM_NAME")}
    result = subprocess.run(
        [sys.executable, "-m", "aejax.main", "--config=experiments/beta_vae.py:smoke", f"--workdir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    for noise in ("Unable to initialize backend", "libtpu", "nan", "ETA ?", "\x1b", "Warning", "WARNING"):
        assert noise not in log, (noise, log)
    progress = [line for line in log.splitlines() if "] step 5/20" in line]
    assert progress and "loss " in progress[0]
    last = log.strip().splitlines()[-1]
    match = re.search(r"time: start-up ([\d.]+)s, data ([\d.]+)s, init ([\d.]+)s, first chunk ([\d.]+)s, "
                      r"train ([\d.]+)s, eval ([\d.]+)s, figures ([\d.]+)s, checkpoint ([\d.]+)s; total ([\d.]+)s, "
                      r"of which compiling ([\d.]+)s \((\d+) programs, (\d+) loaded from the compilation cache\)",
                      last)
    assert match, last
    parts = [float(x) for x in match.groups()[:8]]
    assert abs(sum(parts) - float(match.group(9))) <= 0.05 * 9 and int(match.group(11)) > 0  # each rounded
    # The command ends without the interpreter's teardown (`cli.exit_without_teardown`): all it wrote is whole.
    import aejax
    from aejax.training.writers import read_metrics
    assert aejax.load(str(tmp_path)).step == 20 and aejax.load(str(tmp_path), step=10).step == 10
    assert [r["step"] for r in read_metrics(str(tmp_path)) if "eval/elbo" in r] == [10, 20]
    (events_file,) = (tmp_path / "tensorboard").iterdir()
    assert _whole_tfrecords(events_file.read_bytes()) > 10


def _whole_tfrecords(data: bytes) -> int:
    """The number of records of a TFRecord file, each checked whole: its length and both masked CRC-32Cs."""
    from tensorboardX.crc32c import crc32c

    def masked(chunk):
        crc = crc32c(chunk)
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    at, count = 0, 0
    while at < len(data):
        (length,) = struct.unpack("<Q", data[at:at + 8])
        assert struct.unpack("<I", data[at + 8:at + 12])[0] == masked(data[at:at + 8])
        assert struct.unpack("<I", data[at + 12 + length:at + 16 + length])[0] == masked(data[at + 12:at + 12 + length])
        at, count = at + 16 + length, count + 1
    return count


@pytest.mark.parametrize("eval_batch_size, num_train_steps", [(1000, 20), (100, 20), (1000, 23)])
def test_every_program_of_a_run_compiles_once(tmp_path, eval_batch_size, num_train_steps):
    """The first chunk, evaluation and figures compile ahead in threads; a mismatch with the real call would
    compile twice. 1000: the 359 test images in one eval batch; 100: 3 full batches and a remainder of 59.
    23 steps in chunks of 5: the last chunk, of 3 steps, runs in the full chunks' program. Nothing is traced
    twice either: the initial state's shapes (needed before it exists) and its call share one trace."""
    counts, traces = collections.Counter(), collections.Counter()

    def count(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            counts[kwargs.get("fun_name")] += 1
        if event == "/jax/core/compile/jaxpr_trace_duration":
            traces[kwargs.get("fun_name")] += 1

    config = beta_vae.get_config("smoke")
    config.eval_batch_size = eval_batch_size
    config.num_train_steps = num_train_steps
    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        train_and_evaluate(config, str(tmp_path))
    finally:
        jax.monitoring.unregister_event_duration_listener(count)
    assert counts.pop("jit(evaluate_batches)") == (1 if eval_batch_size == 1000 else 2), counts
    assert set(counts.values()) == {1} and counts["jit(train_chunk)"] == counts["jit(init)"] == 1, counts
    assert traces.pop("evaluate_batches") == (1 if eval_batch_size == 1000 else 2), traces
    assert traces["init"] == 1 and set(traces.values()) == {1}, traces  # nothing traced twice


def test_a_slow_compile_ahead_survives_the_first_chunk_donating_the_state(tmp_path, monkeypatch):
    """The compile thread must not hold the state's buffers: the first chunk donates them (a loaded machine's race)."""
    from aejax.training import step as step_lib
    compile_evaluation = step_lib.Evaluate.compile

    def late(self, *args):
        time.sleep(3)  # the first chunk has run (and donated the state) by now
        return compile_evaluation(self, *args)

    monkeypatch.setattr(step_lib.Evaluate, "compile", late)
    config = beta_vae.get_config("smoke")
    train_and_evaluate(config, str(tmp_path))
    assert os.path.isdir(os.path.join(tmp_path, "checkpoints", str(config.num_train_steps)))


def test_the_first_progress_line_has_no_speed_until_one_is_measured(caplog):
    progress = Progress(20, 0, 32, log_every_seconds=0)
    with caplog.at_level(logging.INFO, logger="absl"):  # whatever verbosity an earlier test left
        progress.start(5)
        progress.update(5, "loss 50.23")
        time.sleep(0.01)
        progress.update(10, "loss 40.00")
    first, second = [r.getMessage() for r in caplog.records if "step " in r.getMessage()]
    assert first == "step 5/20 (25%)  loss 50.23"
    assert "nan" not in second and " step/s " in second and "ETA 0:00" in second and "examples/s" in second


def test_a_smoke_run_imports_nothing_it_does_not_use(tmp_path):
    """No tfds, grain, sklearn, umap, matplotlib, tensorboardX or torch on the path of a run whose data are cached.

    A stand-in `torch` is importable (as when the bench's torch is installed): nothing may import it.
    """
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('imported the stand-in torch')\n")
    # The command ends in os._exit after the exit handlers (`cli.exit_without_teardown`): report from one of them.
    script = ("import atexit, runpy, sys\n"
              "heavy = ('tensorflow_datasets', 'tensorflow', 'grain', 'sklearn', 'umap', 'matplotlib', "
              "'tensorboardX', 'torch')\n"
              "atexit.register(lambda: print(sorted(m for m in heavy if m in sys.modules)))\n"
              f"sys.argv = ['aejax.main', '--config=experiments/beta_vae.py:smoke', '--workdir={tmp_path / 'run'}']\n"
              "runpy.run_module('aejax.main', run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=f"{REPO}:{tmp_path / 'site'}"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "[]", result.stdout
    assert (tmp_path / "run" / "checkpoints" / "20").is_dir()
