"""Sweeps: the grid, resumability (finished points are skipped), and the summary."""
import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from aejax.studies import sweep, sweep_cli, sweep_summary

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_sweep(runs_dir, specs=("beta=0.5,2", "seed=0,1"), extra=()):
    return sweep_cli.parse_args(["run", "experiments/beta_vae.py:smoke", str(runs_dir), *specs, "--", *extra])[1]


def test_grid_is_the_cartesian_product_with_readable_names(tmp_path):
    s = make_sweep(tmp_path, ("beta=0.5,2", "seed=0,1", "hidden_dims=(8,4),(16,)"),
                   ("--config.num_epochs=2", "--num_importance_samples=50"))
    ps = sweep.points(s)
    assert len(ps) == 8
    assert [p.overrides for p in ps[:3]] == [
        {"beta": "0.5", "seed": "0", "hidden_dims": "(8,4)"},
        {"beta": "0.5", "seed": "0", "hidden_dims": "(16,)"},
        {"beta": "0.5", "seed": "1", "hidden_dims": "(8,4)"}]
    assert ps[0].name == "beta=0.5__seed=0__hidden_dims=(8,4)"
    assert "--config.beta=0.5" in ps[0].train_command and "--config.num_epochs=2" in ps[0].train_command
    assert "--num_importance_samples=50" in ps[0].eval_command
    assert "--num_importance_samples=50" not in ps[0].train_command


@pytest.mark.parametrize("specs", [("beta",), ("beta=1,,2",), ("beta=1", "beta=2"), ("1beta=2",)])
def test_bad_axes_are_refused(tmp_path, specs):
    with pytest.raises(SystemExit):
        make_sweep(tmp_path, specs)


def fake_finished_point(point, step=10, commands=None):
    os.makedirs(os.path.join(point.workdir, "checkpoints", str(step)))
    json.dump({"num_train_steps": step}, open(os.path.join(point.workdir, "config.json"), "w"))
    json.dump({"overrides": point.overrides, "commands": commands or sweep.commands_of(point)},
              open(os.path.join(point.workdir, sweep.POINT_FILE), "w"))
    time.sleep(0.02)
    json.dump({"step": step, "metrics": {}}, open(os.path.join(point.workdir, "eval.json"), "w"))


def test_status_needs_a_fresh_final_eval_from_the_same_commands(tmp_path):
    point = sweep.points(make_sweep(tmp_path))[0]
    assert sweep.status(point) == "new"
    fake_finished_point(point)
    assert sweep.status(point) == "finished"
    # Other flags (e.g. more epochs) make it a different run: redo it.
    changed = sweep.points(make_sweep(tmp_path, extra=("--config.num_epochs=3",)))[0]
    assert sweep.status(changed) == "partial"
    # A checkpoint newer than eval.json (training went on): not finished.
    eval_time = os.path.getmtime(os.path.join(point.workdir, "eval.json"))
    os.utime(os.path.join(point.workdir, "checkpoints", "10"), (eval_time + 5, eval_time + 5))
    assert sweep.status(point) == "partial"
    os.utime(os.path.join(point.workdir, "checkpoints", "10"), (eval_time - 5, eval_time - 5))
    assert sweep.status(point) == "finished"
    # An eval of an earlier step than the run's last.
    json.dump({"num_train_steps": 20}, open(os.path.join(point.workdir, "config.json"), "w"))
    assert sweep.status(point) == "partial"


def test_concurrent_jobs_get_disjoint_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 5})
    assert sweep.core_slots(1) is None                      # one job: leave it every core
    assert sweep.core_slots(2) == [frozenset({0, 1}), frozenset({2, 3})]
    assert sweep.core_slots(5) == [frozenset({c}) for c in (0, 1, 2, 3, 5)]
    assert sweep.core_slots(6) is None                      # more jobs than cores: no pinning


@pytest.mark.slow
def test_a_second_sweep_skips_finished_points(tmp_path):
    runs = tmp_path / "runs"
    cmd = ["bash", "launch.sh", "experiments/beta_vae.py:smoke", str(runs), "beta=0.5,2", "--parallel", "2",
           "--", "--config.num_train_steps=10", "--num_importance_samples=4", "--noclustering"]
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHON=sys.executable)
    first = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 done, 0 skipped, 0 failed" in first.stdout
    names = ["beta=0.5", "beta=2"]
    stamps = {n: os.path.getmtime(runs / n / "eval.json") for n in names}
    second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    assert second.returncode == 0 and "0 done, 2 skipped, 0 failed" in second.stdout
    for n in names:
        assert os.path.getmtime(runs / n / "eval.json") == stamps[n]
        assert open(runs / n / "train.log").read().count("=== ") == 1   # trained once
        assert json.load(open(runs / n / "eval.json"))["step"] == 10
    if len(os.sched_getaffinity(0)) >= 2:  # the two jobs ran pinned to disjoint cores
        pins = {open(runs / n / "train.log").read().split("[cpus ")[1].split("]")[0] for n in names}
        assert len(pins) == 2
    summary = subprocess.run([sys.executable, "-m", "aejax.sweep_summary", str(runs)], cwd=REPO, env=env,
                             capture_output=True, text=True)
    assert summary.returncode == 0 and "| beta | n |" in summary.stdout


def test_a_point_another_process_runs_is_left_to_it_not_failed(tmp_path, capsys):
    """Two sweeps over one RUNS_DIR share its points: one held by the other's run is not a failure."""
    s = make_sweep(tmp_path, ("seed=0,1",))
    held, free = [dataclasses.replace(p, train_command=(sys.executable, "-c", "pass"),
                                      eval_command=(sys.executable, "-c", "pass")) for p in sweep.points(s)]
    os.makedirs(held.workdir)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); f.write(sys.argv[2]); f.flush(); "
                               "print('held', flush=True); time.sleep(60)", os.path.join(held.workdir, "run.lock"),
                               json.dumps({"pid": 1234, "host": "node7", "started": "2026-12-03 20:00:00",
                                           "command": "python -m aejax.main"})],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = sweep.run([held, free], sweep.run_point, 1, str(tmp_path))
    finally:
        holder.kill()
    out = capsys.readouterr().out
    assert code == 0
    assert ("[0] seed=0: running in another process (pid 1234 on host node7 (running since 2026-12-03 20:00:00: "
            "python -m aejax.main)), left to it") in out
    assert "1 done, 0 skipped, 1 running in another process, 0 failed" in out
    assert not os.path.exists(os.path.join(held.workdir, "train.log"))  # nothing started on it
    assert not os.path.exists(os.path.join(held.workdir, sweep.POINT_FILE))


def test_a_point_lost_to_another_process_between_check_and_start_is_left_to_it(tmp_path, monkeypatch):
    point = sweep.points(make_sweep(tmp_path, ("seed=0",)))[0]
    point = dataclasses.replace(point, train_command=(sys.executable, "-c", "raise SystemExit(2)"))
    checks = iter([False, True])  # free when checked; taken by the time its train started
    monkeypatch.setattr(sweep.workdir_lib, "held_elsewhere", lambda workdir: next(checks))
    said = []
    assert sweep.run_point(point, say=said.append) == "elsewhere"
    assert said[-1].startswith("[0] seed=0: running in another process") and not any("FAILED" in x for x in said)


# A command that records each stop signal it gets in a file, and exits 128 + the first after a moment.
SIGNAL_RECORDER = """
import signal, sys, time
got = []
def record(signum, frame):
    got.append(signum)
    open(sys.argv[1], "a").write(f"{signum}\\n")
for s in (signal.SIGTERM, signal.SIGINT):
    signal.signal(s, record)
open(sys.argv[1] + ".started", "w").close()
deadline = time.time() + 30
while time.time() < deadline and not got:
    time.sleep(0.01)
time.sleep(0.3)  # a second signal in this time would be recorded too
sys.exit(128 + got[0] if got else 0)
"""


# A sweep of three points whose commands record signals, stopped by a signal to itself once two run.
STOPPED_SWEEP = """
import dataclasses, os, sys, threading, time
from aejax.studies import sweep, sweep_cli
runs, signum, recorder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = sweep_cli.parse_args(["run", "experiments/vae.py:smoke", runs, "seed=0,1,2"])[1]
records = [os.path.join(runs, f"signals{i}") for i in range(3)]
points = [dataclasses.replace(p, train_command=(sys.executable, "-c", recorder, records[p.index]))
          for p in sweep.points(s)]
def stop_when_both_run():
    while not all(os.path.exists(r + ".started") for r in records[:2]):
        time.sleep(0.01)
    os.kill(os.getpid(), signum)
threading.Thread(target=stop_when_both_run, daemon=True).start()
import signal
before = signal.getsignal(signum)
code = sweep.run(points, sweep.run_point, 2, runs)
print("handler restored:", signal.getsignal(signum) is before)
sys.exit(code)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_sweep_passes_the_signal_to_each_running_command_once_and_starts_no_other(tmp_path, signum):
    result = subprocess.run([sys.executable, "-c", STOPPED_SWEEP, str(tmp_path), str(int(signum)), SIGNAL_RECORDER],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    out = result.stdout
    assert result.returncode == 128 + signum, out + result.stderr
    records = [tmp_path / f"signals{i}" for i in range(3)]
    assert [r.read_text() for r in records[:2]] == [f"{int(signum)}\n"] * 2  # once each, not twice
    assert not os.path.exists(str(records[2]) + ".started")  # the third point never started
    name = signal.Signals(signum).name
    assert f"[0] seed=0: train stopped by {name}" in out and "FAILED" not in out
    assert "0 done, 0 skipped, 0 failed, 3 stopped or not started" in out
    assert f"stopped by {name}: the training runs saved their checkpoints; rerun the same command to resume" in out
    assert "handler restored: True" in out  # the sweep's handlers are gone after it


@pytest.mark.slow
def test_a_sweep_stopped_by_sigterm_stops_its_runs_with_their_checkpoints(tmp_path):
    runs = tmp_path / "runs"
    cmd = ["bash", "launch.sh", "experiments/vae.py:smoke", str(runs), "seed=0,1", "--parallel", "2", "--",
           "--config.num_train_steps=100000", "--config.checkpoint_every_steps=100000", "--num_importance_samples=4",
           "--nobaselines", "--non2d"]
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHON=sys.executable)
    launcher = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    logs = [runs / f"seed={i}" / "train.log" for i in (0, 1)]
    deadline = time.time() + 240
    while time.time() < deadline and not all(l.exists() and "first chunk of" in l.read_text() for l in logs):
        time.sleep(0.2)
    launcher.send_signal(signal.SIGTERM)
    out, _ = launcher.communicate(timeout=240)
    assert launcher.returncode == 143, out
    assert "stopped by SIGTERM: the training runs saved their checkpoints" in out
    steps = []
    for l in logs:
        last = l.read_text().strip().splitlines()[-1]
        assert last.startswith("stopped by SIGTERM after step "), last
        steps.append(int(last.split("after step ")[1].split()[0]))
        assert os.path.isdir(l.parent / "checkpoints" / str(steps[-1]))
    assert subprocess.run(["pgrep", "-f", str(runs)], capture_output=True).stdout == b""  # no run left behind


def write_fake_sweep(runs_dir, values):
    for (beta, seed), (kl, recon, acc) in values.items():
        workdir = runs_dir / f"beta={beta}__seed={seed}"
        workdir.mkdir(parents=True)
        json.dump({"overrides": {"beta": beta, "seed": seed}, "commands": {}},
                  open(workdir / sweep.POINT_FILE, "w"))
        json.dump({"step": 1, "metrics": {"kl": kl, "reconstruction_nll": recon, "elbo": -(kl + recon),
                                          "kmeans_codes_accuracy": acc}}, open(workdir / "eval.json", "w"))


def test_summary_means_and_stds_over_seeds(tmp_path):
    values = {("1", "0"): (20.0, 250.0, 0.50), ("1", "1"): (22.0, 248.0, 0.54),
              ("4", "0"): (8.0, 262.0, 0.52), ("4", "1"): (7.0, 266.0, 0.56), ("16", "0"): (1.0, 300.0, 0.30)}
    write_fake_sweep(tmp_path, values)
    out = sweep_summary.summarise(str(tmp_path))
    rows = list(csv.DictReader(open(out["csv"])))
    assert len(rows) == 5 and {"point", "beta", "seed", "kl", "elbo"} <= set(rows[0])
    lines = out["table"].splitlines()
    assert lines[0] == "| beta | n | elbo | kl | reconstruction_nll | kmeans_codes_accuracy |"
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| 1", "| 4", "| 16"]   # numeric order
    kl4 = np.array([8.0, 7.0])
    assert f"{kl4.mean():.3f} ± {kl4.std(ddof=1):.3f}" in lines[3]
    assert "300.0 |" in lines[4] and "±" not in lines[4].split(" | ")[4]              # n = 1: no std
    for key in ("rate_distortion", "metrics_plot"):
        assert os.path.getsize(out[key]) > 1000
    assert out["table"] in open(out["markdown"]).read()
    assert out["metrics_plot"].endswith("metrics_vs_beta.png")


def test_populations_are_cut_to_fill_the_cores_the_same_way_every_time():
    from aejax.studies.population_sweep import split_for_cores
    assert split_for_cores([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]], 2) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert split_for_cores([[0, 1, 2], [3, 4]], 2) == [[0, 1, 2], [3, 4]]
    assert split_for_cores([[0, 1, 2]], 4) == [[0], [1], [2]]
    assert split_for_cores([[0, 1, 2, 3, 4]], 1) == [[0, 1, 2, 3, 4]]
