"""The startup section: whole processes side by side, a smoke run against JAX's own start.

Three commands, run in turn, `repeats` rounds (alternating, so a change in the
machine's load touches all three alike), each timed by its wall clock:

* ``python -c "import jax; jax.numpy.ones(1)"``: the floor, JAX's own start;
* a warm smoke run: ``python -m aejax.main --config=<config>`` in a fresh workdir,
  with a compilation cache filled beforehand by one run of the same config (what a
  user's second run of a config sees);
* a cold smoke run: the same with an empty compilation cache (a first run; the
  dataset is prepared already, by the priming run).

Minima over the rounds (the least disturbed figure on a shared machine) and their
ratios to the floor are printed, of wall time (the targets: warm ≤ 3×, cold ≤ 6×) and
of CPU time (user + system of the process and its threads: steadier when other jobs
share the cores). The last warm run's own breakdown (its ``time:`` log line) shows
where its time went.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time

FLOOR = [sys.executable, "-c", "import jax; jax.numpy.ones(1)"]
TARGETS = {"warm": 3.0, "cold": 6.0}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_process(command: list[str], env: dict[str, str], cwd: str) -> tuple[tuple[float, float], str, str]:
    """((wall seconds, CPU seconds), stdout, stderr) of one whole process; RuntimeError if it failed."""
    start, cpu = time.perf_counter(), _cpu_seconds()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = (time.perf_counter() - start, _cpu_seconds() - cpu)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return seconds, result.stdout, result.stderr


def _run(command: list[str], env: dict[str, str], cwd: str) -> tuple[tuple[float, float], str]:
    """((wall seconds, CPU seconds), its log) of one whole process."""
    seconds, _, log = run_process(command, env, cwd)
    return seconds, log


def time_line(log: str) -> str:
    lines = [line.split("] ", 1)[-1] for line in log.splitlines() if "] time: " in line]
    return lines[-1] if lines else "(no time: line in the log)"


def run(config: str, repeats: int, repo: str, say=print) -> dict:
    """{"seconds": {name: [(wall, CPU) seconds per round]}, "commands": {...}, "breakdown": str}."""
    with tempfile.TemporaryDirectory(prefix="aejax-startup-") as tmp:
        env = dict(os.environ)
        env.pop("AEJAX_COMPILATION_CACHE", None)
        smoke = [sys.executable, "-m", "aejax.main", f"--config={config}"]
        warm_cache = os.path.join(tmp, "warm-cache")
        _run([*smoke, f"--workdir={tmp}/prime"], {**env, "AEJAX_COMPILATION_CACHE": warm_cache}, repo)
        seconds: dict[str, list[tuple[float, float]]] = {"jax": [], "warm": [], "cold": []}
        breakdown = ""
        for i in range(repeats):
            seconds["jax"].append(_run(FLOOR, env, repo)[0])
            warm, log = _run([*smoke, f"--workdir={tmp}/warm{i}"], {**env, "AEJAX_COMPILATION_CACHE": warm_cache},
                             repo)
            seconds["warm"].append(warm)
            breakdown = time_line(log)
            cold_cache = os.path.join(tmp, f"cold-cache{i}")
            seconds["cold"].append(_run([*smoke, f"--workdir={tmp}/cold{i}"],
                                        {**env, "AEJAX_COMPILATION_CACHE": cold_cache}, repo)[0])
            say(f"  startup round {i + 1}: " + ", ".join(f"{k} {v[-1][0]:.2f}s" for k, v in seconds.items()))
    commands = {"jax": 'python -c "import jax; jax.numpy.ones(1)"',
                "warm": f"python -m aejax.main --config={config} (compilation cache filled, fresh workdir)",
                "cold": f"python -m aejax.main --config={config} (empty compilation cache, fresh workdir)"}
    return {"seconds": seconds, "commands": commands, "breakdown": breakdown}


def report(result: dict) -> list[str]:
    seconds = result["seconds"]
    best = {name: [min(run[k] for run in runs) for k in (0, 1)] for name, runs in seconds.items()}
    lines = [f"Start-up: whole processes, {len(seconds['jax'])} rounds alternating; minima of wall and CPU "
             "seconds, and their ratios to JAX's start"]
    for name, command in result["commands"].items():
        (wall, cpu), (floor_wall, floor_cpu) = best[name], best["jax"]
        ratio = "" if name == "jax" else (f"{wall / floor_wall:6.2f}× JAX (target ≤ {TARGETS[name]:.0f}×); "
                                           f"CPU {cpu / floor_cpu:5.2f}×")
        lines.append(f"  {command:100s}{wall:7.2f}s wall {cpu:6.2f}s CPU  {ratio}")
    lines.append(f"  warm run's breakdown: {result['breakdown']}")
    return lines + [""]
