"""Figures of a trained run: python -m aejax.inspect --workdir=DIR [--step=N].

Thin: flags in, `aejax.evaluation.inspect_run` writes PNGs, latents.npz and
index.html (figures, config, and the eval table of eval.json if present)
under DIR/inspect/. Named `inspect` as a submodule only: import it as
`aejax.inspect`, never relatively.
"""
from absl import app, flags, logging

from aejax.core import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir (with checkpoints/).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to inspect (default: the latest).")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 64, "Reconstructions and prior samples shown.",
                                   lower_bound=1)
_GRID = flags.DEFINE_integer("grid_size", 16, "The latent manifold is grid_size × grid_size.",
                             lower_bound=2)
_SCATTER = flags.DEFINE_integer("scatter_points", 5000, "Test codes in the scatter plots.",
                                lower_bound=10)
_UMAP = flags.DEFINE_bool("umap", True, "Also a UMAP scatter (latent_dim > 2; tens of seconds).")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", 0, "Use the first N examples of the split "
                                     "(0 = all; the latents.npz codes are these).", lower_bound=0)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of prior samples, the scatter subset and UMAP.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from aejax.evaluation import inspect_run
    options = inspect_run.InspectOptions(num_images=_NUM_IMAGES.value, grid_size=_GRID.value,
                                         scatter_points=_SCATTER.value, umap=_UMAP.value,
                                         max_examples=_MAX_EXAMPLES.value, seed=_SEED.value)
    with cli.one_line_errors():
        shown = inspect_run.inspect_run(_WORKDIR.value, _STEP.value, options)
    logging.info("wrote %d figures, latents.npz and index.html to %s/inspect", len(shown), _WORKDIR.value)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
