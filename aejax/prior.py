"""Fit the PixelCNN prior over a VQ-VAE run's code grids: python -m aejax.prior --workdir=DIR.

Thin: flags in, `aejax.studies.code_prior.fit` does the work; the prior is saved in
DIR/prior/ (with report.json: its bits per code position on train and test, and the
codebook's usage), after which `aejax.load(DIR).sample(key, n)` works.
"""
import json

from absl import app, flags

from aejax.core import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "A vq_vae training workdir (with checkpoints/).")
_CHANNELS = flags.DEFINE_integer("channels", 32, "PixelCNN width.", lower_bound=1)
_LAYERS = flags.DEFINE_integer("num_layers", 3, "Gated masked-conv (type B) layers after the type A one.",
                               lower_bound=0)
_EPOCHS = flags.DEFINE_integer("num_epochs", 5, "Passes over the training code grids.", lower_bound=1)
_BATCH = flags.DEFINE_integer("batch_size", 128, "Code grids per step.", lower_bound=1)
_LR = flags.DEFINE_float("learning_rate", 1e-3, "Adam's learning rate.", lower_bound=0.0)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the PixelCNN's init and the batch order.")
_MAX = flags.DEFINE_integer("max_examples", 0, "Train on the first N training images (0 = all).", lower_bound=0)
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from aejax.studies import code_prior
    options = code_prior.PriorOptions(channels=_CHANNELS.value, num_layers=_LAYERS.value, num_epochs=_EPOCHS.value,
                                      batch_size=_BATCH.value, learning_rate=_LR.value, seed=_SEED.value,
                                      max_examples=_MAX.value)
    with cli.one_line_errors():
        report = code_prior.fit(_WORKDIR.value, options)
    print(json.dumps({k: report[k] for k in ("step", "train_bits_per_dim", "test_bits_per_dim",
                                             "uniform_bits_per_dim", "independent_codes_bits_per_dim",
                                             "codebook_usage")}, indent=2))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
