"""Sweeps: the cartesian product of config overrides, one workdir per point.

    python -m aejax.sweep run   CONFIG RUNS_DIR key=v1,v2 ... [--parallel N] [-- FLAGS]
    python -m aejax.sweep plan  CONFIG RUNS_DIR key=v1,v2 ... [-- FLAGS]
    python -m aejax.sweep point INDEX CONFIG RUNS_DIR key=v1,v2 ... [-- FLAGS]
    (each also with --population: INDEX is then a population's)

`launch.sh` is the usual entry point. A point is `python -m aejax.main` then
`python -m aejax.evaluate` in RUNS_DIR/<key=value__key=value>, with their
output in train.log / evaluate.log there. FLAGS after `--`: `--config.*`
go to training (every point), anything else to aejax.evaluate.

`run` runs the points on this machine, `--parallel` at once; `plan` lists the
points and their status; `point` runs one point by its index (what an array
job of a cluster scheduler calls). With `--population` the jobs are populations
of points trained as one vmapped program (`aejax.studies.population_sweep`). A point is finished, and skipped, when its
eval.json is newer than its last checkpoint, covers the run's final step, and
was made by the same commands (sweep_point.json); an interrupted point
resumes from its checkpoint. A point another process's run holds is left to
it (two sweeps over one RUNS_DIR share the points); SIGTERM or SIGINT to the
sweep reaches its running commands once (`aejax.studies.sweep_children`).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import json
import os
import queue
import re
import signal
import sys
import threading
import time

from aejax.studies.sweep_children import Children, run_logged
from aejax.training import workdir as workdir_lib
from aejax.training.progress import format_seconds
from aejax.core.files import atomic_write

POINT_FILE = "sweep_point.json"


@dataclasses.dataclass(frozen=True)
class Point:
    """One combination of override values and where it runs."""
    index: int
    overrides: dict[str, str]
    workdir: str
    train_command: tuple[str, ...]
    eval_command: tuple[str, ...]

    @property
    def name(self) -> str:
        return os.path.basename(self.workdir)


@dataclasses.dataclass(frozen=True)
class Sweep:
    config: str
    runs_dir: str
    grid: tuple[tuple[str, tuple[str, ...]], ...]
    train_flags: tuple[str, ...] = ()
    eval_flags: tuple[str, ...] = ()
    python: str = sys.executable


# ------------------------------------------------------------------ grid ----

def split_values(text: str) -> list[str]:
    """'0.5,1,(400,200)' → ['0.5', '1', '(400,200)']: commas inside brackets stay."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += char
    values.append(current)
    if any(not v for v in values):
        raise ValueError(f"empty value in {text!r}")
    return values


def parse_grid(specs: list[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """['beta=1,2', 'seed=0,1'] → (('beta', ('1', '2')), ('seed', ('0', '1')))."""
    grid = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][\w.]*", key):
            raise ValueError(f"a sweep axis is key=v1,v2,...; got {spec!r}")
        if key in dict(grid):
            raise ValueError(f"sweep axis {key!r} is given twice")
        grid.append((key, tuple(split_values(values))))
    return tuple(grid)


def point_name(overrides: dict[str, str]) -> str:
    """A readable directory name: beta=0.5__seed=1 (characters unsafe in paths become '-')."""
    safe = {k: re.sub(r"[^\w.,=+()-]", "-", v) for k, v in overrides.items()}
    return "__".join(f"{k}={v}" for k, v in safe.items()) or "default"


def points(sweep: Sweep) -> list[Point]:
    """Every point of the grid, the first axis varying slowest."""
    keys = [k for k, _ in sweep.grid]
    result = []
    for index, values in enumerate(itertools.product(*(v for _, v in sweep.grid))):
        overrides = dict(zip(keys, values))
        workdir = os.path.join(sweep.runs_dir, point_name(overrides))
        train = (sweep.python, "-m", "aejax.main", f"--config={sweep.config}", f"--workdir={workdir}",
                 *(f"--config.{k}={v}" for k, v in overrides.items()), *sweep.train_flags)
        evaluate = (sweep.python, "-m", "aejax.evaluate", f"--workdir={workdir}", *sweep.eval_flags)
        result.append(Point(index, overrides, workdir, train, evaluate))
    return result


# ---------------------------------------------------------------- status ----

def _latest_checkpoint_mtime(workdir: str) -> float | None:
    directory = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(directory):
        return None
    steps = [d for d in os.listdir(directory) if d.isdigit()]
    if not steps:
        return None
    return os.path.getmtime(os.path.join(directory, max(steps, key=int)))


def commands_of(point: Point) -> dict:
    """What decides a point's result: its flags, not the interpreter or how RUNS_DIR is spelled."""
    def flags(command):
        return [arg for arg in command[1:] if not arg.startswith("--workdir=")]
    return {"train": flags(point.train_command), "evaluate": flags(point.eval_command)}


def status(point: Point) -> str:
    """'finished', 'partial' (something to resume or redo) or 'new'."""
    eval_path = os.path.join(point.workdir, "eval.json")
    checkpoint_time = _latest_checkpoint_mtime(point.workdir)
    if checkpoint_time is None:
        return "new"
    try:
        with open(eval_path) as f:
            report = json.load(f)
        with open(os.path.join(point.workdir, "config.json")) as f:
            final_step = json.load(f)["num_train_steps"]
        with open(os.path.join(point.workdir, POINT_FILE)) as f:
            recorded = json.load(f)["commands"]
    except (OSError, ValueError, KeyError):
        return "partial"
    finished = (os.path.getmtime(eval_path) > checkpoint_time and report.get("step") == final_step
                and recorded == commands_of(point))
    return "finished" if finished else "partial"


# ------------------------------------------------------------------- run ----

def tail(path: str, lines: int = 5) -> str:
    with open(path) as f:
        return "".join(f.readlines()[-lines:])


def left_to_another_process(points: list[Point], say, index: int, name: str) -> bool:
    """Whether a run of another process holds one of `points` (said in one line): that process
    trains and evaluates it, so two sweeps over one RUNS_DIR share its points instead of failing."""
    held = [p for p in points if workdir_lib.held_elsewhere(p.workdir)]
    if held:
        say(f"[{index}] {name}: running in another process ({workdir_lib.describe_holder(held[0].workdir)}), "
            "left to it")
    return bool(held)


def run_point(point: Point, env: dict | None = None, say=print, cpus: frozenset[int] | None = None,
              children: Children | None = None) -> str:
    """Train then evaluate one point: 'skipped' (finished before), 'elsewhere' (another process runs it),
    'done', 'failed' or 'interrupted' (the sweep was stopped)."""
    if status(point) == "finished":
        say(f"[{point.index}] {point.name}: finished before, skipped")
        return "skipped"
    if left_to_another_process([point], say, point.index, point.name):
        return "elsewhere"
    os.makedirs(point.workdir, exist_ok=True)
    atomic_write(os.path.join(point.workdir, POINT_FILE),
                 json.dumps({"overrides": point.overrides, "commands": commands_of(point)}, indent=2))
    env = dict(os.environ if env is None else env)
    start = time.perf_counter()
    for stage, command in (("train", point.train_command), ("evaluate", point.eval_command)):
        say(f"[{point.index}] {point.name}: {stage} (log: {point.workdir}/{stage}.log)")
        log_path = os.path.join(point.workdir, f"{stage}.log")
        code = run_logged(command, log_path, env, cpus, children)
        if children is not None and children.stopped_by:
            say(f"[{point.index}] {point.name}: {stage} stopped by {signal.Signals(children.stopped_by).name}")
            return "interrupted"
        if code != 0 and left_to_another_process([point], say, point.index, point.name):  # it won the race
            return "elsewhere"
        if code != 0:
            say(f"[{point.index}] {point.name}: {stage} FAILED (exit {code}); last lines of {log_path}:\n"
                + tail(log_path))
            return "failed"
    say(f"[{point.index}] {point.name}: done in {format_seconds(time.perf_counter() - start)}")
    return "done"


def child_env(parallel: int) -> dict:
    """Share the cores: BLAS/OpenMP threads per job = cores // parallel (unless set already)."""
    env = dict(os.environ)
    threads = str(max(1, (os.cpu_count() or 1) // parallel))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, threads)
    return env


def core_slots(parallel: int) -> list[frozenset[int]] | None:
    """Disjoint sets of this process's cores, one per concurrent job (None: no pinning).

    XLA:CPU sizes its thread pool to every core it can see, so `parallel` unpinned
    jobs oversubscribe the machine; pinned, each job's pool fits its own cores.
    """
    if parallel < 2 or not hasattr(os, "sched_getaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < parallel:
        return None
    per_job = len(cores) // parallel
    return [frozenset(cores[i * per_job:(i + 1) * per_job]) for i in range(parallel)]


def run(jobs: list, run_job, parallel: int, runs_dir: str) -> int:
    """Every job (a point, or a population of points), `parallel` at once; exit status 1 if any failed.

    `run_job(job, env, say, cpus, children)` returns 'skipped', 'elsewhere', 'done', 'failed' or
    'interrupted'. SIGTERM or SIGINT stops the running commands (a training run saves its checkpoint
    first) and starts no other; the sweep then exits with 128 + the signal's number.
    """
    lock = threading.Lock()

    def say(message: str) -> None:
        with lock:
            print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    say(f"sweep of {len(jobs)} {'jobs' if jobs and not isinstance(jobs[0], Point) else 'points'} in {runs_dir}, "
        f"{parallel} at once")
    env = child_env(parallel)
    start = time.perf_counter()
    slots = core_slots(parallel)
    free = queue.Queue()
    for slot in slots or [None] * parallel:
        free.put(slot)

    children = Children()

    def run_on_free_cores(job) -> str:
        cpus = free.get()
        try:
            return "interrupted" if children.stopped_by else run_job(job, env, say, cpus, children)
        finally:
            free.put(cpus)

    if slots:
        say("each job pinned to its own cores: " + "; ".join(",".join(map(str, sorted(s))) for s in slots))
    with children.forwarding_signals(), concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        results = list(pool.map(run_on_free_cores, jobs))
    counts = {r: results.count(r) for r in ("done", "skipped", "elsewhere", "failed", "interrupted")}
    labels = {"elsewhere": "running in another process", "interrupted": "stopped or not started"}
    say(f"sweep {'stopped' if children.stopped_by else 'finished'} in "
        f"{format_seconds(time.perf_counter() - start)}: "
        + ", ".join(f"{n} {labels.get(r, r)}" for r, n in counts.items() if n or r not in labels))
    if counts["failed"]:
        failed = [job.name for job, r in zip(jobs, results) if r == "failed"]
        say(f"failed (rerun the same command to retry them): {', '.join(failed)}")
    if children.stopped_by:
        say(f"stopped by {signal.Signals(children.stopped_by).name}: the training runs saved their checkpoints; "
            "rerun the same command to resume")
        return 128 + children.stopped_by
    return 1 if counts["failed"] else 0
