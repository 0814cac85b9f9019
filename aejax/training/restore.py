"""A trained model as plain jitted functions, and restoring one from a workdir: `aejax.load(workdir)`."""
from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from aejax import objectives
from aejax.core.errors import DamagedCheckpointError
from aejax.training import checkpoint, prior_store
from aejax.training.state import abstract_train_state


def as_model_input(x: Any) -> jax.Array:
    """Images as float32 [B, H, W, C] in [0, 1]; uint8 input is scaled from 0..255."""
    x = np.asarray(x) if not isinstance(x, jax.Array) else x
    if x.dtype == np.uint8:
        return jnp.asarray(x, jnp.float32) / 255.0
    return jnp.asarray(x, jnp.float32)


class TrainedModel:
    """A variant's model with fixed params, as plain jitted functions.

    encode(x): (mean, logvar) for the VAE family, the code z otherwise.
    decode(z): the decoder's mean image (e.g. σ(logits) for a Bernoulli p(x|z)).
    reconstruct(x): decode(the encoder's mean code).
    sample(key, n): decode(z ~ p(z)), N(0, I) unless the variant has its own prior
      (fixed, or learned: then drawn with the params); generative variants only;
      for a variant with a `fitted_prior` (VQ-VAE), decode(embed(k)) of code grids
      k drawn from `code_prior` (attached by `load` from <workdir>/prior/ once
      `python -m aejax.prior` has fitted it).
    """

    def __init__(self, config: ml_collections.ConfigDict, params: Any, step: int | None = None,
                 code_prior: prior_store.CodePrior | None = None, workdir: str | None = None):
        self.config = config
        self.params = params
        self.step = step
        self.code_prior, self.workdir = code_prior, workdir
        self.variant = objectives.get(config.model)
        self.image_shape = tuple(config.image_shape)
        self.model = self.variant.build_model(config, self.image_shape)
        model, variant = self.model, self.variant

        def encode(params, x):
            return model.apply(params, x, method="encode")

        def decode(params, z):
            out = model.apply(params, z, method="decode")
            return variant.likelihood(params, config).mean(out)

        def code(params, x):
            encoded = encode(params, x)
            return encoded[0] if variant.probabilistic_encoder else encoded

        def sample(params, key, n):
            if variant.sample_learned_prior is not None:
                return decode(params, variant.sample_learned_prior(model, config, params, key, n))
            if variant.sample_prior is not None:
                return decode(params, variant.sample_prior(config, key, n))
            return decode(params, jax.random.normal(key, (n, config.latent_dim)))

        self._encode = jax.jit(encode)
        self._decode = jax.jit(decode)
        self._code = jax.jit(code)
        self._reconstruct = jax.jit(lambda params, x: decode(params, code(params, x)))
        self._sample = jax.jit(sample, static_argnums=2)
        if code_prior is not None:
            self._sample_fitted = jax.jit(lambda params, prior_params, key, n: decode(params, model.apply(
                params, code_prior.sample_indices(prior_params, key, n), method="embed")), static_argnums=3)

    @property
    def latent_dim(self) -> int:
        return int(self.config.latent_dim)

    def encode(self, x):
        return self._encode(self.params, as_model_input(x))

    def code(self, x):
        """The point code used for figures and clustering (the posterior mean for a VAE)."""
        return self._code(self.params, as_model_input(x))

    def decode(self, z):
        return self._decode(self.params, jnp.asarray(z, jnp.float32))

    def reconstruct(self, x):
        return self._reconstruct(self.params, as_model_input(x))

    def sample(self, key: jax.Array, n: int):
        if self.variant.fitted_prior:
            if self.code_prior is None:
                raise ValueError(f"model {self.config.model!r} samples through a prior over its codes, fitted "
                                 f"after training: run python -m aejax.prior --workdir={self.workdir or 'WORKDIR'}")
            return self._sample_fitted(self.params, self.code_prior.params, key, int(n))
        if not self.variant.generative:
            raise ValueError(f"model {self.config.model!r} has no prior to sample from; "
                             "sample() is for the generative (VAE-family) variants")
        return self._sample(self.params, key, int(n))

    def compile_figures(self, num_images: int, key: jax.Array, params=None) -> None:
        """Compiles reconstruct (of float [0, 1] images) and sample for `num_images`, without running them.

        The training loop calls it from a background thread, so its figures are
        ready when first drawn; `params` (default: this model's) may be shapes.
        """
        params = self.params if params is None else params
        images = jax.ShapeDtypeStruct((num_images, *self.image_shape), jnp.float32)
        self._reconstruct.lower(params, images).compile()
        if self.variant.generative:
            self._sample.lower(params, key, num_images).compile()


def _abstract_of(meta: dict):
    return abstract_train_state(ml_collections.ConfigDict(meta["config"]))


def load(workdir: str, step: int | None = None) -> TrainedModel:
    """The model saved in `workdir/checkpoints` at `step` (latest by default), verified.

    A damaged checkpoint is refused with one line naming the steps whose
    checkpoints verify (load one of them with `step=`).
    """
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise FileNotFoundError(f"{workdir} has no checkpoints/ directory; is it a training workdir?")
    checkpointer = checkpoint.Checkpointer(workdir, read_only=True)
    step = checkpointer.resolve(step)
    try:
        meta = checkpointer.metadata(step)
        state = checkpointer.restore(_abstract_of(meta), meta["config"], step)
    except DamagedCheckpointError as error:
        good = [s for s in checkpointer.verified_steps(_abstract_of) if s != step]
        hint = (f"checkpoints that verify: steps {', '.join(map(str, good))}; load one with "
                f"aejax.load({workdir!r}, step={good[-1]}) (--step={good[-1]} for aejax.evaluate/inspect)"
                if good else "no other checkpoint there verifies")
        raise DamagedCheckpointError(f"{error}; {hint}") from None
    config = ml_collections.ConfigDict(meta["config"])
    code_prior = prior_store.load(workdir) if objectives.get(config.model).fitted_prior else None
    return TrainedModel(config, state.params, int(state.step), code_prior=code_prior, workdir=workdir)


def load_config(workdir: str) -> ml_collections.ConfigDict:
    with open(os.path.join(workdir, "config.json")) as f:
        return ml_collections.ConfigDict(json.load(f))
