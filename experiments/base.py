"""Fields every experiment has; experiment files import this and change a few.

`--config=experiments/<name>.py:smoke` gives a seconds-long size of any
experiment (tests and quick checks).
"""
import ml_collections


def get_config(size: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    # What to train.
    c.model = "vae"                  # registry name (aejax.registry.names())
    c.architecture = "mlp"           # aejax.models.ARCHITECTURES
    c.hidden_dims = (400,)           # encoder hidden widths; the decoder mirrors them
    c.decoder_hidden_dims = ()       # () = reversed(hidden_dims)
    c.activation = "relu"
    c.code_activation = "linear"     # activation of a deterministic code (sparse/contractive: sigmoid)
    c.conv_channels = (32, 64)       # architecture "conv": channels of the stride-2 conv layers
    c.conv_kernel_size = 4
    c.conv_upsample = "subpixel"     # decoder's 2x upsampling: subpixel | transpose (aejax.models.conv)
    c.latent_dim = 20
    c.likelihood = "bernoulli"       # bernoulli | gaussian | gaussian_learned
    c.decoder_logvar = 0.0           # fixed log σ² of a gaussian likelihood
    c.beta = 1.0                     # KL weight (VAE family)
    c.kl_warmup_steps = 0            # β rises linearly from 0 over these steps (0 = off)
    c.free_bits = 0.0                # floor λ (nats) on each latent dim's batch-mean KL (0 = off)
    # Data.
    c.dataset = "fashion_mnist"
    c.data_dir = ""                  # tfds cache; "" = $AEJAX_TFDS_DIR or ~/.cache/aejax
    c.binarize = "dynamic"           # none | static | dynamic
    c.data_seed = 0                  # the static binarisation draw
    # Optimisation.
    c.batch_size = 128
    c.num_epochs = 20
    c.num_train_steps = -1           # -1 = num_epochs × (train examples // batch_size)
    c.optimizer = "adam"
    c.learning_rate = 1e-3
    c.lr_schedule = "constant"       # constant | cosine
    c.warmup_steps = 0
    c.grad_clip_norm = 0.0           # 0 = off
    c.scan_steps = True              # chunks of steps as one lax.scan; False: a jitted call per
                                     # step (conv models on CPU: XLA:CPU convs in loops are ~10x slower)
    c.weight_decay = 0.0             # adamw only
    c.seed = 0
    # Bookkeeping. Steps run in chunks of gcd(log, eval, checkpoint) inside one
    # compiled call, so these set how often control returns to Python.
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.keep_checkpoints = 3
    c.eval_batch_size = 1000
    c.num_figure_images = 64
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
    c.latent_dim = min(c.latent_dim, 4)
    c.batch_size = 32
    c.num_epochs = 1
    c.num_train_steps = 20
    c.log_every_steps = 5
    c.eval_every_steps = 10
    c.checkpoint_every_steps = 10
    c.eval_batch_size = 100
    c.num_figure_images = 16
