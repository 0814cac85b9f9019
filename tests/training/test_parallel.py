"""Data parallelism and data placement: every layout trains to the same parameters.

The device count of a JAX process is fixed when JAX starts, so the
multi-device and multi-process runs happen in fresh subprocesses.
"""
import json
import os
import re
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

import aejax
from aejax.core import parallel
from aejax.core.errors import ConfigError
from aejax.data import placement, splits
from aejax.training.loop import train_and_evaluate
from aejax.training.writers import read_metrics
from experiments import vae

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Subprocesses compile like the test process does (see conftest.py): fast, same numerics.
ENV = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1",
           PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
STEPS = dict(num_train_steps=10, log_every_steps=5, eval_every_steps=10, checkpoint_every_steps=10)


def smoke(**overrides):
    config = vae.get_config("smoke")
    for key, value in {**STEPS, **overrides}.items():
        config[key] = value
    return config


def assert_close_trees(a, b, **tolerance):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tolerance)


@pytest.fixture(scope="module")
def device_run(tmp_path_factory):
    """The reference: one process, one device, the split on the device."""
    workdir = str(tmp_path_factory.mktemp("device"))
    train_and_evaluate(smoke(data_placement="device", num_devices=1), workdir)
    return workdir


@pytest.mark.parametrize("placement", ["host", "stream"])
def test_host_and_stream_placements_train_on_the_same_batches_as_the_device(device_run, tmp_path, placement):
    train_and_evaluate(smoke(data_placement=placement), str(tmp_path))
    assert_close_trees(aejax.load(device_run).params, aejax.load(str(tmp_path)).params, rtol=1e-6, atol=1e-7)
    assert open(os.path.join(tmp_path, "config.json")).read() != ""


def test_stream_reads_examples_by_index_like_the_loaded_split():
    config = smoke()
    loaded, lazy = splits.load(config, "train"), splits.open_source(config, "train")
    assert (lazy.num_examples, lazy.image_shape) == (loaded.num_examples, loaded.image_shape)
    indices = np.array([5, 0, 1437, 5])
    for got, want in zip(lazy.read(indices), loaded.read(indices)):
        np.testing.assert_array_equal(got, want)


def test_static_binarization_cannot_stream():
    with pytest.raises(ConfigError, match="binarize='static'.*cannot stream"):
        splits.open_source(smoke(binarize="static"), "train")


def test_auto_placement_follows_the_split_size(monkeypatch):
    mesh = parallel.make_mesh(1)
    digits_bytes = 1438 * 8 * 8
    monkeypatch.setattr(placement, "device_memory_bytes", lambda device: 4 * digits_bytes)
    monkeypatch.setattr(placement, "_host_memory_bytes", lambda: 4 * digits_bytes)
    assert placement.choose_placement(smoke(), mesh) == "device"
    monkeypatch.setattr(placement, "device_memory_bytes", lambda device: 3 * digits_bytes)
    assert placement.choose_placement(smoke(), mesh) == "host"
    monkeypatch.setattr(placement, "_host_memory_bytes", lambda: 3 * digits_bytes)
    assert placement.choose_placement(smoke(), mesh) == "stream"
    assert placement.choose_placement(smoke(data_placement="host"), mesh) == "host"


def test_bad_placement_and_device_count_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="config.data_placement='gpu' is not allowed"):
        train_and_evaluate(smoke(data_placement="gpu"), str(tmp_path))
    with pytest.raises(ConfigError, match="config.num_devices=-1 is not allowed"):
        train_and_evaluate(smoke(num_devices=-1), str(tmp_path))


_EIGHT_DEVICES = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    import aejax
    from aejax import objectives
    from aejax.core import parallel
    from aejax.core.errors import ConfigError
    from aejax.core.optim import gradient_update
    from aejax.training.chunks import make_train_chunk
    from aejax.training.loop import train_and_evaluate
    from aejax.training.state import create_train_state, variant_optimizer
    from aejax.training.step import make_train_step
    from experiments import vae

    assert jax.device_count() == 8, jax.devices()
    root, reference = sys.argv[1:]
    def smoke(**overrides):
        config = vae.get_config("smoke")
        config.update(dict(num_train_steps=10, log_every_steps=5, eval_every_steps=10,
                           checkpoint_every_steps=10, **overrides))
        return config

    runs = {"eight": dict(num_devices=0, data_placement="device"),
            "eight_host": dict(num_devices=0, data_placement="host"),
            "eight_looped": dict(num_devices=0, data_placement="device", scan_steps=False)}
    for name, overrides in runs.items():
        train_and_evaluate(smoke(**overrides), f"{root}/{name}")
    params = {name: jax.tree_util.tree_leaves(aejax.load(f"{root}/{name}").params) for name in runs}
    one = jax.tree_util.tree_leaves(aejax.load(reference).params)

    # The compiled chunk splits the batch and all-reduces the gradients.
    config = smoke()
    config.image_shape = (8, 8, 1)
    variant = objectives.get("vae")
    model = variant.build_model(config, config.image_shape)
    optimizer = variant_optimizer(variant, config, 10)
    mesh = parallel.make_mesh(0)
    state = jax.device_put(create_train_state(config, variant, model, optimizer, jax.random.PRNGKey(0)),
                           parallel.replicated(mesh))
    step = make_train_step(gradient_update(variant.make_loss(model, config), optimizer))
    chunk = make_train_chunk(step, config, mesh)
    images = np.zeros((100, 8, 8, 1), np.uint8)
    indices = np.zeros((3, config.batch_size), np.int32)
    hlo = chunk.lower(state, images, np.zeros(100, np.int32), indices).compile().as_text()
    try:
        train_and_evaluate(smoke(batch_size=36), f"{root}/bad")
        refused = ""
    except ConfigError as error:
        refused = str(error)
    print(json.dumps({
        "max_diff": {name: max(float(np.max(np.abs(a - b))) for a, b in zip(one, p))
                     for name, p in params.items()},
        "all_reduce": "all-reduce" in hlo,
        "refused": refused}))
""")


def test_eight_devices_train_to_the_parameters_of_one(device_run, tmp_path):
    env = dict(ENV, JAX_NUM_CPU_DEVICES="8")
    result = subprocess.run([sys.executable, "-c", _EIGHT_DEVICES, str(tmp_path), device_run],
                            cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert max(report["max_diff"].values()) < 1e-5, report
    assert report["all_reduce"]
    assert "batch_size=36 must be a multiple of the 8 devices" in report["refused"]


@pytest.mark.parametrize("scan_steps", [True, False])
def test_two_processes_train_to_the_parameters_of_one(device_run, tmp_path, scan_steps):
    """scripts/launch_multiprocess.sh: 2 local processes, coordinator on 127.0.0.1; the steps in one
    compiled loop, or a jitted call each (the indices of each step placed on the global mesh)."""
    reference = device_run
    workdir = str(tmp_path / "two")
    overrides = [f"--config.{k}={v}" for k, v in {**STEPS, "scan_steps": scan_steps}.items()]
    result = subprocess.run(
        ["bash", "scripts/launch_multiprocess.sh", "2", "experiments/vae.py:smoke", workdir, *overrides],
        cwd=REPO, env=dict(ENV, PYTHON=sys.executable), capture_output=True, text=True, timeout=300)
    logs = "".join(open(os.path.join(workdir, "logs", f)).read()[-2000:]
                   for f in sorted(os.listdir(os.path.join(workdir, "logs"))))
    assert result.returncode == 0, result.stderr[-2000:] + logs
    assert "2 devices in 2 processes" in logs
    assert_close_trees(aejax.load(reference).params, aejax.load(workdir).params, rtol=1e-5, atol=1e-6)
    # Process 0 alone wrote the metrics: one record per logged step.
    steps = [r["step"] for r in read_metrics(workdir)]
    assert steps == [r["step"] for r in read_metrics(reference)]


def _launch(workdir, *overrides, wait=True):
    command = ["bash", "scripts/launch_multiprocess.sh", "2", "experiments/vae.py:smoke", workdir, *overrides]
    env = dict(ENV, PYTHON=sys.executable)
    if wait:
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _process_logs(workdir):
    return [open(os.path.join(workdir, "logs", f"process_{i}.log")).read() for i in range(2)]


def test_a_locked_workdir_stops_every_process_of_a_job_in_one_line(tmp_path):
    from aejax.training import workdir as workdir_lib
    workdir = str(tmp_path / "locked")
    os.makedirs(workdir)
    lock = workdir_lib.WorkdirLock(workdir).acquire()  # another run holds it
    try:
        result = _launch(workdir, *(f"--config.{k}={v}" for k, v in STEPS.items()))
    finally:
        lock.release()
    assert result.returncode == 2, result.stderr[-2000:]
    for log in _process_logs(workdir):  # both processes stop (none hangs at a collective), each in one line
        errors = [line for line in log.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"is in use by pid {os.getpid()}" in errors[0], log[-2000:]
        assert "Traceback" not in log
    assert not os.path.exists(os.path.join(workdir, "checkpoints"))


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_at_the_same_step_and_resume_is_exact(tmp_path):
    """SLURM signals every task, but not at the same moment; here only process 1 gets SIGTERM."""
    import signal
    overrides = ["--config.num_train_steps=150", "--config.log_every_steps=5", "--config.eval_every_steps=150",
                 "--config.checkpoint_every_steps=25"]
    reference, workdir = str(tmp_path / "reference"), str(tmp_path / "stopped")
    done = _launch(reference, *overrides)
    assert done.returncode == 0, done.stderr[-2000:]
    launcher = _launch(workdir, *overrides, wait=False)
    deadline = time.time() + 300
    while time.time() < deadline and not os.path.isdir(os.path.join(workdir, "checkpoints", "25")):
        assert launcher.poll() is None, "".join(_process_logs(workdir))[-3000:]
        time.sleep(0.02)
    children = open(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read().split()
    process_1 = next(int(pid) for pid in children
                     if b"JAX_PROCESS_ID=1" in open(f"/proc/{pid}/environ", "rb").read().split(b"\0"))
    os.kill(process_1, signal.SIGTERM)
    launcher.communicate(timeout=300)
    logs = _process_logs(workdir)
    assert launcher.returncode == 143, "".join(logs)[-3000:]
    stops = [re.search(r"stopped by SIGTERM after step (\d+) of 150", log) for log in logs]
    assert all(stops), "".join(logs)[-3000:]
    stopped = {int(m.group(1)) for m in stops}
    assert len(stopped) == 1, stopped  # both at the same step, although only one was signalled
    assert aejax.load(workdir).step == stopped.pop()
    resumed = _launch(workdir, *overrides)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    leaves = jax.tree_util.tree_leaves
    for x, y in zip(leaves(aejax.load(reference).params), leaves(aejax.load(workdir).params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
