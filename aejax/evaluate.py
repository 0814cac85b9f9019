"""Evaluate a trained run: python -m aejax.evaluate --workdir=DIR [--step=N] [--num_importance_samples=K].

Thin: flags in, `aejax.evaluation.evaluate_run` does the work; the report is
written to DIR/eval.json and printed as a table. See aejax/evaluation/evaluate_run.py
for what is measured and in which units.
"""
from absl import app, flags, logging

from aejax.core import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir (with checkpoints/).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the latest).")
_K = flags.DEFINE_integer("num_importance_samples", 1000,
                          "K for the importance-weighted log p(x) (VAE family; Burda et al. use "
                          "5000); 0 skips the likelihood part.", lower_bound=0, upper_bound=100_000)
_CHUNK = flags.DEFINE_integer("samples_per_chunk", 100, "Samples of q drawn at once (memory bound).",
                              lower_bound=1)
_BATCH = flags.DEFINE_integer("batch_size", 100, "Test images per compiled call.", lower_bound=1)
_THRESHOLD = flags.DEFINE_float("active_unit_threshold", 0.01,
                                "A latent dim is active if Cov_x(E_q[z_d|x]) exceeds this.")
_CLUSTERING = flags.DEFINE_bool("clustering", True, "k-means/N2D clustering and linear probes.")
_N2D = flags.DEFINE_bool("n2d", True, "The codes → UMAP → k-means pipeline (a few tens of seconds).")
_BASELINES = flags.DEFINE_bool("baselines", True, "Raw-pixel and PCA clustering/probe baselines.")
_PROBE = flags.DEFINE_bool("probe", True, "Linear probe (logistic regression on frozen codes).")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", 0, "Evaluate the first N examples (0 = all).",
                                     lower_bound=0)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the q samples, k-means and UMAP.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from aejax.evaluation import evaluate_run
    options = evaluate_run.EvalOptions(
        num_importance_samples=_K.value, samples_per_chunk=_CHUNK.value, batch_size=_BATCH.value,
        active_unit_threshold=_THRESHOLD.value, clustering=_CLUSTERING.value, n2d=_N2D.value,
        baselines=_BASELINES.value, probe=_PROBE.value, max_examples=_MAX_EXAMPLES.value,
        seed=_SEED.value)
    with cli.one_line_errors():
        evaluate_run.check_can_write(_WORKDIR.value)  # before the minutes of computing
        report = evaluate_run.evaluate_run(_WORKDIR.value, _STEP.value, options)
        print(evaluate_run.format_table(report))  # shown even if writing then fails
        logging.info("wrote %s", evaluate_run.write_report(_WORKDIR.value, report))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
