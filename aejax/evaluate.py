"""Evaluate a trained run: python -m aejax.evaluate --workdir=DIR [--step=N] [--num_importance_samples=K].

Thin: flags in, `aejax.evaluation.evaluate_run` does the work; the report is
written to DIR/eval.json and printed as a table. See aejax/evaluation/evaluate_run.py
for what is measured and in which units. Several `--workdir`s are evaluated in one
process, vmapped where they can share a program (`aejax.evaluation.population_eval`).
"""
from absl import app, flags, logging

from aejax.core import cli
from aejax.evaluation.evaluate_run import define_option_flags

_WORKDIRS = flags.DEFINE_multi_string("workdir", None, "A training workdir (with checkpoints/); repeat it to "
                                      "evaluate several runs in one process.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the latest).")
_OPTIONS = define_option_flags()
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from aejax.evaluation import evaluate_run, population_eval
    workdirs, options = _WORKDIRS.value, _OPTIONS()
    with cli.one_line_errors():
        for workdir in workdirs:
            evaluate_run.check_can_write(workdir)  # before the minutes of computing
        if len(workdirs) > 1:
            reports = population_eval.evaluate_population(workdirs, _STEP.value, options)
        else:
            reports = [evaluate_run.evaluate_run(workdirs[0], _STEP.value, options)]
            print(evaluate_run.format_table(reports[0]))  # shown even if writing then fails
            evaluate_run.write_report(workdirs[0], reports[0])
    for workdir, report in zip(workdirs, reports if len(workdirs) > 1 else []):
        print(evaluate_run.format_table(report))
    logging.info("wrote %s", ", ".join(f"{w}/eval.json" for w in workdirs))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
