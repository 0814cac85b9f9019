"""aejax: autoencoders in JAX/Flax. `aejax.load(workdir)` restores a trained run."""
from aejax import cpu_tuning as _cpu_tuning

_cpu_tuning.apply()  # before any JAX backend starts (see aejax/cpu_tuning.py)


def load(workdir: str, step: int | None = None):
    """The trained model in `workdir` (see aejax.restore.TrainedModel)."""
    from aejax.restore import load as _load
    return _load(workdir, step)
