"""Ex-post density estimation for a deterministic AE: python -m aejax.fit_prior --workdir=DIR [--components=10].

Thin: `aejax.evaluation.ex_post_density` fits a full-covariance Gaussian mixture
to the codes of the training split and saves it to DIR/prior/gmm.npz; then
`aejax.load(DIR).sample(key, n)` (and the sample figures and sample-quality
metrics) draw z from it (Ghosh et al. 2020).
"""
from absl import app, flags

from aejax.core import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir of a deterministic AE (ae, rae, ...).")
_COMPONENTS = flags.DEFINE_integer("components", 10, "Gaussians in the mixture.", lower_bound=1)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint whose codes are fitted (default: the latest).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of EM's k-means initialisation.")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", 0, "Fit the first N training codes (0 = all).",
                                     lower_bound=0)
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from aejax.evaluation import ex_post_density
    with cli.one_line_errors():
        fitted = ex_post_density.fit_prior(_WORKDIR.value, _COMPONENTS.value, _STEP.value, _SEED.value,
                                           _MAX_EXAMPLES.value)
    print(f"fitted {fitted['components']} full-covariance Gaussians to {fitted['num_codes']} training codes of "
          f"step {fitted['step']} (converged: {fitted['converged']}); mean log-likelihood per code: "
          f"train {fitted['train_log_likelihood']:.3f}, test {fitted['test_log_likelihood']:.3f} nats")
    print(f"wrote {fitted['path']}")


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
