"""N2D as published on a trained autoencoder: python -m aejax.n2d --workdir=DIR [--seeds=0,1,2] [--curve_epochs=10,100].

Thin: `aejax.studies.n2d` does the work (see experiments/n2d.py for the autoencoder
of the paper); the table is printed, DIR/n2d.json written (DIR/n2d_umap2.json with
--umap_dim=2). --score_clusters=FILE scores a clustering saved elsewhere (the
paper's code writes one id per image) against the labels of DIR's dataset instead.
"""
import sys

from absl import app, flags

from aejax.core import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained run's workdir (e.g. of experiments/n2d.py).")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of UMAP and the GMM (one clustering each; "
                           "~1.5 min each for 70,000 codes on a free core: UMAP is single-threaded for determinism).")
_CURVE = flags.DEFINE_list("curve_epochs", [], "Also score the kept checkpoints nearest these epochs, or 'all' "
                           "(seed 0): accuracy against epochs, drawn to DIR/n2d_accuracy.png (~1.5 min each).")
_UMAP_DIM = flags.DEFINE_integer("umap_dim", 0, "UMAP's output dimension; 0: the number of classes (the paper's "
                                 "table; 2 is its released code's plotting run). Other values write "
                                 "DIR/n2d_umap<dim>.json.", lower_bound=0)
_SCORE_CLUSTERS = flags.DEFINE_string("score_clusters", None, "Only score this file of cluster ids (one integer "
                                      "per image, train then test, as the paper's code saves them) against the "
                                      "labels of DIR's dataset: seconds, no UMAP.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from aejax.evaluation.n2d import Protocol
    from aejax.studies import n2d
    with cli.one_line_errors():
        if _SCORE_CLUSTERS.value:
            sys.stdout.write(n2d.report_assignment(n2d.score_assignment(_WORKDIR.value, _SCORE_CLUSTERS.value)))
            return
        curve = "all" if _CURVE.value == ["all"] else tuple(float(e) for e in _CURVE.value)
        result = n2d.run(_WORKDIR.value, tuple(int(s) for s in _SEEDS.value), curve,
                         Protocol(umap_dim=_UMAP_DIM.value))
    sys.stdout.write(n2d.report(result))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
