"""Where every experiment starts: each key a run of `model` reads, at the default its module declares.

Keys are declared next to the code that reads them (`aejax.training.config`
collects them); `python -m aejax.main --config=experiments/X.py` prints none of
this, but `aejax.training.config.default_config("vae")` shows them all, and the
README's config table lists the common ones. Experiment files import this and
change a few; `--config=experiments/<name>.py:smoke` gives a seconds-long size of
any experiment (tests and quick checks).
"""
import ml_collections

from aejax.training.config import default_config


def get_config(size: str | None = None, model: str = "vae") -> ml_collections.ConfigDict:
    c = default_config(model)
    if size == "smoke":
        shrink_to_smoke(c)
    elif size not in (None, ""):
        raise ValueError(f"unknown config size {size!r}; use ':smoke' or nothing")
    return c


def shrink_to_smoke(c: ml_collections.ConfigDict) -> None:
    """A seconds-long run on the small digits dataset."""
    c.dataset = "digits"
    c.hidden_dims = (32,)
    c.conv_channels = (8, 16)
    if "discriminator_hidden_dims" in c:
        c.discriminator_hidden_dims = (32, 32)
    c.latent_dim = min(c.latent_dim, 4)
    c.batch_size = 32
    c.num_epochs = 1
    c.num_train_steps = 20
    c.log_every_steps = 5
    c.eval_every_steps = 10
    c.checkpoint_every_steps = 10
    c.num_figure_images = 16
