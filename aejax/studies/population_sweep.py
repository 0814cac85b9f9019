"""Sweeps as populations: the points that can share one program train (and evaluate) in one process.

`python -m aejax.sweep run|plan|point ... --population` (or `launch.sh ... --population`)
groups the points of a sweep into populations (`aejax.training.population.split_into_populations`:
points that differ only in numbers the train step reads; the others are split
automatically) and runs each population as one job: `python -m aejax.sweep point INDEX
... --population` trains every member with one vmapped program
(`aejax.training.population_run`), then evaluates them in the same process
(`aejax.evaluation.population_eval`), writing each member's workdir exactly as the
separate point would (config.json, metrics.jsonl, TensorBoard, figures, checkpoints,
eval.json, sweep_point.json). A population whose members are all finished is skipped;
otherwise it runs as a whole (finished training is not repeated: it resumes at the
final step), so its program, and so its numbers, do not depend on what ran before.
Its output goes to RUNS_DIR/populations/<INDEX>.log.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time

from aejax.core.errors import ConfigError
from aejax.studies.sweep import (POINT_FILE, Point, Sweep, commands_of, left_to_another_process, points, status,
                                 tail)
from aejax.studies.sweep_children import Children, run_logged
from aejax.training.progress import format_seconds
from aejax.core.files import atomic_write


@dataclasses.dataclass(frozen=True)
class PopulationJob:
    """The points of one population and the command that trains and evaluates them."""
    index: int
    points: tuple[Point, ...]
    command: tuple[str, ...]
    log: str

    @property
    def name(self) -> str:
        return f"population {self.index} ({len(self.points)} members)"


def point_config(point: Point):
    """The config the point's separate run would train: its config file with every --config.* flag applied."""
    from absl import flags
    from ml_collections import config_flags
    argv = ["sweep", *(arg for arg in point.train_command[3:] if not arg.startswith("--workdir="))]
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=flag_values, lock_config=True, sys_argv=argv)
    try:
        flag_values(argv)
    except flags.Error as error:
        raise ConfigError(f"{point.name}: {str(error).splitlines()[0]}") from None
    return flag_values.config


def split_for_cores(groups: list[list[int]], cores: int) -> list[list[int]]:
    """Each population cut into contiguous parts so that there are about `cores` jobs, one per core.

    On a CPU two processes pinned to a core each train faster than one process
    whose XLA threads share both (measured in the README), so a population is
    cut to fill the cores; every part is still one vmapped program. The cut
    depends only on the groups and `cores`, so a rerun with the same --parallel
    forms the same populations (and so reaches the same numbers, bit for bit).
    """
    parts = max(1, cores // max(1, len(groups)))
    return [chunk for group in groups for chunk in _contiguous(group, parts) if chunk]


def _contiguous(items: list[int], parts: int) -> list[list[int]]:
    size, extra = divmod(len(items), parts)
    cuts = [sum(size + (i < extra) for i in range(k)) for k in range(parts + 1)]
    return [items[cuts[k]:cuts[k + 1]] for k in range(parts)]


def population_jobs(sweep: Sweep, cores: int = 1) -> list[PopulationJob]:
    """The sweep's points grouped into populations (cut to fill `cores` on a CPU), numbered by their first point."""
    import jax

    from aejax.training.population import split_into_populations
    if jax.default_backend() != "cpu":
        cores = 1  # an accelerator runs one population's program best whole
    all_points = points(sweep)
    groups = split_for_cores(split_into_populations([point_config(p) for p in all_points]), cores)
    specs = [f"{key}={','.join(values)}" for key, values in sweep.grid]
    jobs = []
    for index, group in enumerate(groups):
        command = (sweep.python, "-m", "aejax.sweep", "point", str(index), sweep.config, sweep.runs_dir, *specs,
                   "--population", f"--parallel={cores}", "--", *sweep.train_flags, *sweep.eval_flags)
        log = os.path.join(sweep.runs_dir, "populations", f"{index}.log")
        jobs.append(PopulationJob(index, tuple(all_points[i] for i in group), command, log))
    return jobs


def job_status(job: PopulationJob) -> str:
    """'finished' when every member is, 'new' when none has started, else 'partial'."""
    states = {status(point) for point in job.points}
    return states.pop() if len(states) == 1 else "partial"


def run_job(job: PopulationJob, env: dict | None = None, say=print, cpus: frozenset[int] | None = None,
            children: Children | None = None) -> str:
    """Train then evaluate one population in a process of its own (skipped if finished, left to another
    process if one of its points is held there)."""
    if job_status(job) == "finished":
        say(f"[{job.index}] {job.name}: finished before, skipped")
        return "skipped"
    if left_to_another_process(list(job.points), say, job.index, job.name):
        return "elsewhere"
    for point in job.points:
        os.makedirs(point.workdir, exist_ok=True)
        atomic_write(os.path.join(point.workdir, POINT_FILE), json.dumps(
            {"overrides": point.overrides, "commands": commands_of(point),
             "population": {"index": job.index, "members": [p.name for p in job.points], "log": job.log}}, indent=2))
    os.makedirs(os.path.dirname(job.log), exist_ok=True)
    say(f"[{job.index}] {job.name}: train and evaluate (log: {job.log})")
    start = time.perf_counter()
    code = run_logged(job.command, job.log, dict(os.environ if env is None else env), cpus, children)
    if children is not None and children.stopped_by:
        say(f"[{job.index}] {job.name}: stopped by {signal.Signals(children.stopped_by).name}")
        return "interrupted"
    if code != 0 and left_to_another_process(list(job.points), say, job.index, job.name):  # it won the race
        return "elsewhere"
    if code != 0:
        say(f"[{job.index}] {job.name}: FAILED (exit {code}); last lines of {job.log}:\n" + tail(job.log))
        return "failed"
    say(f"[{job.index}] {job.name}: done in {format_seconds(time.perf_counter() - start)}")
    return "done"


def run_population_point(sweep: Sweep, index: int, cores: int = 1) -> int:
    """What `python -m aejax.sweep point INDEX ... --population` does, in this process; exit status."""
    from absl import logging

    from aejax.core import cli
    from aejax.evaluation.evaluate_run import options_from_args
    logging.use_absl_handler()
    logging.set_verbosity(logging.INFO)
    from aejax.evaluation.population_eval import evaluate_population
    from aejax.training.population_run import train_population
    jobs = population_jobs(sweep, cores)
    if not 0 <= index < len(jobs):
        print(f"error: population index {index} is not in 0..{len(jobs) - 1}", file=sys.stderr)
        return 2
    job = jobs[index]
    with cli.one_line_errors():
        options = options_from_args(list(sweep.eval_flags))
        results = train_population([point_config(p) for p in job.points], [p.workdir for p in job.points])
        trained = [r["workdir"] for r in results if r["error"] is None]
        evaluate_population(trained, None, options)
    failed = [os.path.basename(r["workdir"]) for r in results if r["error"]]
    for name, result in zip(failed, (r for r in results if r["error"])):
        print(f"error: {name}: {result['error']}", file=sys.stderr)
    return 1 if failed else 0
