"""The command line of `python -m aejax.sweep` (and of launch.sh): run, plan or point, by points or populations."""
from __future__ import annotations

import argparse
import os
import sys

from aejax.studies import population_sweep
from aejax.studies.sweep import Sweep, parse_grid, points, run, run_point, status
from aejax.studies.sweep_children import Children


def default_parallel() -> int:
    """One job per core."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, Sweep]:
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    else:
        extra = []
    parser = argparse.ArgumentParser(prog="python -m aejax.sweep", description=__doc__)
    parser.add_argument("command", choices=("run", "plan", "point"))
    parser.add_argument("args", nargs="+", help="[INDEX] CONFIG RUNS_DIR key=v1,v2 ...")
    parser.add_argument("--parallel", type=int, default=default_parallel(),
                        help="jobs at once, each pinned to its share of the cores (default: one per core); with "
                             "--population the populations are cut to make about this many jobs")
    parser.add_argument("--population", action="store_true",
                        help="train the points that can share one program as one vmapped population")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the jobs")
    args = parser.parse_intermixed_args(argv)
    positional = list(args.args)
    if args.command == "point":
        if not positional or not positional[0].isdigit():
            parser.error("point needs INDEX first")
        args.index = int(positional.pop(0))
    if len(positional) < 2:
        parser.error("need CONFIG and RUNS_DIR")
    config, runs_dir, *specs = positional
    if not os.path.exists(config.split(":")[0]):
        parser.error(f"no config file {config.split(':')[0]}")
    if args.parallel < 1:
        parser.error("--parallel must be ≥ 1")
    try:
        grid = parse_grid(specs)
    except ValueError as error:
        parser.error(str(error))
    sweep = Sweep(config, runs_dir.rstrip("/"), grid,
                  tuple(f for f in extra if f.startswith("--config.")),
                  tuple(f for f in extra if not f.startswith("--config.")), args.python)
    return args, sweep


def main(argv: list[str]) -> int:
    args, sweep = parse_args(argv)
    if args.command == "plan":
        if args.population:
            for job in population_sweep.population_jobs(sweep, args.parallel):
                print(f"{job.index}\t{population_sweep.job_status(job)}\t"
                      + " ".join(point.workdir for point in job.points))
        else:
            for point in points(sweep):
                print(f"{point.index}\t{status(point)}\t{point.workdir}")
        return 0
    if args.command == "point":
        if args.population:
            return population_sweep.run_population_point(sweep, args.index, args.parallel)
        todo = points(sweep)
        if not 0 <= args.index < len(todo):
            print(f"error: point index {args.index} is not in 0..{len(todo) - 1}", file=sys.stderr)
            return 2
        children = Children()
        with children.forwarding_signals():  # a scheduler's SIGTERM reaches the point's run
            result = run_point(todo[args.index], children=children)
        return 128 + children.stopped_by if children.stopped_by else 1 if result == "failed" else 0
    if args.population:
        return run(population_sweep.population_jobs(sweep, args.parallel), population_sweep.run_job, args.parallel,
                   sweep.runs_dir)
    return run(points(sweep), run_point, args.parallel, sweep.runs_dir)
