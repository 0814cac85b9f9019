"""Train an experiment: python -m aejax.main --config=experiments/X.py [--workdir=DIR].

Thin by design: flags in, `aejax.training.loop.train_and_evaluate` does the work.
Without --workdir a run goes to runs/<config name> (plus its overrides, see
`aejax.core.cli.default_workdir`), so the same command resumes it. Bad input (an
unknown model, dataset or override key; a checkpoint from another config; missing
data; a workdir another run holds) ends the run with a one-line error, not a
traceback. SIGTERM/SIGINT save a checkpoint and exit 143/130.
"""
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from aejax.core import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (experiments/*.py[:smoke]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and figures "
                               "(default: runs/<config name>[-<size>][__<override>...]).")
_MULTIHOST = flags.DEFINE_bool(
    "multihost", None, "Join a multi-process run (jax.distributed.initialize); by default on when "
    "JAX_COORDINATOR_ADDRESS is set or a multi-task SLURM step runs this.")
_ALLOW = flags.DEFINE_list(
    "allow_config_change", [], "Config keys a resumed run may change although they change what it "
    "computes (e.g. learning_rate,beta); recorded in WORKDIR/config_history.jsonl.")
flags.mark_flags_as_required(["config"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from aejax.core import parallel
    parallel.initialize(_MULTIHOST.value)  # before any other JAX call
    import jax
    from aejax.training.loop import train_and_evaluate
    workdir = _WORKDIR.value or cli.default_workdir(sys.argv[1:])
    logging.info("JAX %s on %s; workdir %s%s", jax.__version__, jax.devices(), workdir,
                 "" if _WORKDIR.value else " (the default for this config; --workdir=DIR for another)")
    with cli.one_line_errors():
        train_and_evaluate(_CONFIG.value, workdir, allow_config_change=_ALLOW.value)
    if jax.process_count() == 1:  # a multi-process job leaves through jax.distributed's own shutdown
        cli.exit_without_teardown(0)  # everything is written: skip the ~0.5 s of freeing XLA's programs


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
