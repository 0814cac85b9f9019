"""Does a linear autoencoder learn PCA? Train one per k and compare with the top-k principal subspace.

    python -m aejax.linear_vs_pca --config=experiments/linear_ae.py --workdir=DIR --latent_dims=2,10,32

Thin: `aejax.studies.linear_vs_pca.compare` does the work; its table is printed at the end.
"""
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from aejax.core import cli

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/linear_ae.py", "A linear_ae config.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for the runs (one per k) and the results.")
_LATENT_DIMS = flags.DEFINE_list("latent_dims", ["2", "10", "32"], "The k values to compare.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from aejax.studies import linear_vs_pca
    with cli.one_line_errors():
        os.makedirs(_WORKDIR.value, exist_ok=True)
        rows = linear_vs_pca.compare(_CONFIG.value, _WORKDIR.value, [int(k) for k in _LATENT_DIMS.value])
    sys.stdout.write(linear_vs_pca.results_table(rows))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
