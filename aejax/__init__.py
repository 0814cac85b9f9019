"""aejax: autoencoders in JAX/Flax. `aejax.load(workdir)` restores a trained run."""


def load(workdir: str, step: int | None = None):
    """The trained model in `workdir` (see aejax.restore.TrainedModel)."""
    from aejax.restore import load as _load
    return _load(workdir, step)
