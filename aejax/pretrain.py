"""Unsupervised pretraining, then a classifier on few labels.

    python -m aejax.pretrain --config=experiments/pretrain_classifier.py --workdir=DIR

Thin: `aejax.studies.pretrain.run` does the work; its table is printed at the end.
"""
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from aejax.core import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config (experiments/pretrain_classifier.py[:smoke]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for the autoencoder run and the results.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from aejax.studies import pretrain
    with cli.one_line_errors():
        pretrain.run(_CONFIG.value, _WORKDIR.value)
    with open(os.path.join(_WORKDIR.value, "results.md")) as f:
        sys.stdout.write(f.read())


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
