"""aejax: autoencoders in JAX/Flax. `aejax.load(workdir)` restores a trained run.

The packages, each importing only those listed before it: core (errors, options,
variants, maths, optimisers, mesh), data, models, objectives (the registry of
variants), figures, training, evaluation, studies. The modules at this level are
the `python -m aejax.*` commands.
"""
from aejax.core import runtime as _runtime

_runtime.apply()  # the platform, the compilation cache, CPU tuning: before any JAX backend starts


def load(workdir: str, step: int | None = None):
    """The trained model in `workdir` (see aejax.training.restore.TrainedModel)."""
    from aejax.training.restore import load as _load
    return _load(workdir, step)
