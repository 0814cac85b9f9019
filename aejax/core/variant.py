"""What a registered autoencoder variant is: the fields the trainer, evaluation and figures read.

Objective modules make `Variant`s (their module-level `VARIANTS`) and
`aejax.objectives` collects them by name (`config.model`). Nothing here knows
any variant: adding one adds a file, not a branch.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Protocol

import flax.linen as nn
import jax
import ml_collections
import optax

from aejax.core.options import Option

Metrics = dict[str, jax.Array]


class LossFn(Protocol):
    """loss_fn(params, batch, key, step) -> (loss, metrics); pure, jit-able."""

    def __call__(self, params: Any, batch: dict[str, jax.Array], key: jax.Array,
                 step: jax.Array) -> tuple[jax.Array, Metrics]: ...


@dataclasses.dataclass(frozen=True)
class Variant:
    """Everything the trainer needs to know about one autoencoder variant.

    Attributes:
      name: the `config.model` value.
      build_model: (config, image_shape) -> flax module with `encode`/`decode`.
      make_loss: (model, config) -> training `LossFn`.
      likelihood: (params, config) -> `aejax.core.distributions.Likelihood` of the
        decoder output, used for figures, sampling and evaluation.
      init_inputs: (config, image_batch, key) -> positional args for `init`.
      options: the config keys only this variant (family) reads, with their
        defaults and checks (`aejax.core.options`); the shared keys (model,
        data, optimiser, loop) are declared by their own modules.
      make_eval_loss: (model, config) -> `LossFn` used on the test split; by
        default the training loss (its metrics are what eval reports).
      make_optimizer: optional (config, total_steps) -> optax transformation,
        for variants that need several optimisers (e.g. one per param
        subtree); default is the config's optimiser for all params. Its
        `init(params)` makes the optimiser state the train state holds.
      make_update: optional (model, config, total_steps) -> update(params,
        opt_state, batch, key, step) -> (params, opt_state, metrics), for
        variants whose step is several sequential updates (the reconstruction,
        discriminator and generator phases of an adversarial AE); default is
        one gradient of `make_loss` through `make_optimizer`
        (`aejax.core.optim.gradient_update`). It must accept the opt_state that
        `make_optimizer(...).init` makes.
      probabilistic_encoder: `encode` returns (mean, logvar) rather than z.
      generative: there is a prior p(z) to sample from.
      sample_prior: optional (config, key, n) -> n codes z ~ p(z); default
        N(0, I).
      grid_prior: p(z) is learned after training, on the frozen codes (the
        PixelCNN over a VQ-VAE's code grid, `python -m aejax.prior`); `sample`
        decodes the model's `embed` of its draws, and says how to fit it when
        the workdir has none yet.
      sample_learned_prior: optional (model, config, params, key, n) -> n codes
        z ~ p(z), for a prior with learned parameters (VampPrior's
        pseudo-inputs, a hierarchy's p(z1 | z2)); used before `sample_prior`.
      importance_log_weights: optional (model, config, params, x, key, K) ->
        (log w [K, B], log p(x | z) [K, B]) with log w = log p(x, z) − log q(z | x)
        at K fresh z ~ q(z | x), for a variant whose prior is not N(0, I) or
        whose posterior is not one diagonal Gaussian; the importance-weighted
        log p(x) (aejax.evaluation.likelihood) calls it chunk by chunk.
        Default: q = N(encode(x)), p(z) = N(0, I).
      conditional: the model's `encode`/`decode` also take the int class
        labels [B] (after the image or code), and the loss reads batch["label"].
    """
    name: str
    build_model: Callable[[ml_collections.ConfigDict, tuple[int, ...]], nn.Module]
    make_loss: Callable[[nn.Module, ml_collections.ConfigDict], LossFn]
    likelihood: Callable[[Any, ml_collections.ConfigDict], Any]
    init_inputs: Callable[[ml_collections.ConfigDict, jax.Array, jax.Array], tuple]
    options: Mapping[str, Option] = dataclasses.field(default_factory=dict)
    make_eval_loss: Callable[[nn.Module, ml_collections.ConfigDict], LossFn] | None = None
    make_optimizer: Callable[[ml_collections.ConfigDict, int], optax.GradientTransformation] | None = None
    make_update: Callable[[nn.Module, ml_collections.ConfigDict, int], Callable] | None = None
    probabilistic_encoder: bool = False
    generative: bool = False
    sample_prior: Callable[[ml_collections.ConfigDict, jax.Array, int], jax.Array] | None = None
    grid_prior: bool = False
    sample_learned_prior: Callable[..., jax.Array] | None = None
    importance_log_weights: Callable[..., tuple[jax.Array, jax.Array]] | None = None
    conditional: bool = False
