"""Disentanglement scores of a trained run on a dataset with ground-truth factors (dSprites).

    python -m aejax.disentanglement_eval --workdir=DIR [--seed=0] [--step=N] \
        [--size=beta_vae_score.num_train=100 ...]

prints the scores and merges them into DIR/eval.json (created if missing). Thin:
`aejax.evaluation.factor_scores` does the work (`python -m aejax.evaluate` calls it
too, on dSprites runs).
"""
import sys

from absl import app, flags

from aejax.core import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir (checkpoints/ inside).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the metrics' factor samples.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_SIZE = flags.DEFINE_multi_string("size", [], "METRIC.KEY=VALUE overrides of DEFAULT_SIZES, e.g. "
                                  "mutual_info_gap.num_samples=2000.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from aejax.evaluation import evaluate_run, factor_scores
    from aejax.training.restore import load
    with cli.one_line_errors():
        sizes = factor_scores.parse_sizes(_SIZE.value)
        evaluate_run.check_can_write(_WORKDIR.value)  # before the minutes of computing
        trained = load(_WORKDIR.value, _STEP.value)
        scores = factor_scores.disentanglement_metrics(trained, seed=_SEED.value, **sizes)
        if scores is None:
            print(f"{trained.config.dataset} has no ground-truth factors; nothing to do", file=sys.stderr)
            return
        path = factor_scores.merge_into_eval_json(_WORKDIR.value, scores)
        for name, value in sorted(scores.items()):
            print(f"{name}: {value:.4f}")
        print(f"merged into {path}")


if __name__ == "__main__":
    app.run(main)
