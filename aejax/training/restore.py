"""A trained model as plain jitted functions, and restoring one from a workdir: `aejax.load(workdir)`."""
from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from aejax import objectives
from aejax.core import gaussian_mixture
from aejax.core.errors import ConfigError, DamagedCheckpointError, NoPriorError
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
      (fixed, or learned: then drawn with the params); generative variants, and
      those with a prior fitted after training: a deterministic AE's Gaussian
      mixture of its training codes (`fitted_prior`, python -m aejax.fit_prior), a
      VQ-VAE's PixelCNN over its code grids (`code_prior`, python -m aejax.prior;
      decode(embed(k)) of the grids k it draws).

    `labels=` (int classes [n]) is read by conditional variants (cvae) only, and
    needed by them to encode, decode and reconstruct; `sample` without labels
    draws the classes uniformly with its key. Other variants ignore it.
    """

    def __init__(self, config: ml_collections.ConfigDict, params: Any, step: int | None = None,
                 fitted_prior: gaussian_mixture.GaussianMixture | None = None, workdir: str | None = None,
                 code_prior: prior_store.CodePrior | None = None):
        self.config = config
        self.params = params
        self.step = step
        self.fitted_prior = fitted_prior
        self.code_prior = code_prior
        self.workdir = workdir
        self.variant = objectives.get(config.model)
        self.image_shape = tuple(config.image_shape)
        self.model = self.variant.build_model(config, self.image_shape)
        model, variant = self.model, self.variant

        # *labels: () for most variants, (int classes [n],) for a conditional one.
        def encode(params, x, *labels):
            return model.apply(params, x, *labels, method="encode")

        def decode(params, z, *labels):
            out = model.apply(params, z, *labels, method="decode")
            return variant.likelihood(params, config).mean(out)

        def code(params, x, *labels):
            encoded = encode(params, x, *labels)
            return encoded[0] if variant.probabilistic_encoder else encoded

        def sample(params, key, n, *labels):
            if variant.conditional and not labels:
                key, label_key = jax.random.split(key)
                labels = (jax.random.randint(label_key, (n,), 0, model.num_classes),)
            if variant.sample_learned_prior is not None:
                return decode(params, variant.sample_learned_prior(model, config, params, key, n), *labels)
            if variant.sample_prior is not None:
                return decode(params, variant.sample_prior(config, key, n), *labels)
            return decode(params, jax.random.normal(key, (n, config.latent_dim)), *labels)

        self._encode = jax.jit(encode)
        self._decode = jax.jit(decode)
        self._code = jax.jit(code)
        self._reconstruct = jax.jit(lambda params, x, *labels: decode(params, code(params, x, *labels), *labels))
        self._sample = jax.jit(sample, static_argnums=2)
        self._sample_fitted = jax.jit(
            lambda params, prior, key, n: decode(params, gaussian_mixture.sample(*prior, key, n)),
            static_argnums=3)
        if code_prior is not None:
            self._sample_grid = jax.jit(lambda params, prior_params, key, n: decode(params, model.apply(
                params, code_prior.sample_indices(prior_params, key, n), method="embed")), static_argnums=3)

    @property
    def latent_dim(self) -> int:
        return int(self.config.latent_dim)

    def _labels(self, labels, n: int, needed: bool = True) -> tuple:
        """() for an unconditional variant; (int32 labels [n],) for a conditional one (a scalar is broadcast)."""
        if not self.variant.conditional or (labels is None and not needed):
            return ()
        if labels is None:
            raise ConfigError(f"model {self.config.model!r} is conditioned on the class: pass labels= (the int "
                              "class of each image or code)")
        return (jnp.broadcast_to(jnp.asarray(labels, jnp.int32), (n,)),)

    def encode(self, x, labels=None):
        x = as_model_input(x)
        return self._encode(self.params, x, *self._labels(labels, len(x)))

    def code(self, x, labels=None):
        """The point code used for figures and clustering (the posterior mean for a VAE)."""
        x = as_model_input(x)
        return self._code(self.params, x, *self._labels(labels, len(x)))

    def decode(self, z, labels=None):
        z = jnp.asarray(z, jnp.float32)
        return self._decode(self.params, z, *self._labels(labels, len(z)))

    def reconstruct(self, x, labels=None):
        x = as_model_input(x)
        return self._reconstruct(self.params, x, *self._labels(labels, len(x)))

    @property
    def can_sample(self) -> bool:
        """The variant has a prior, or one was fitted after training (fit_prior; aejax.prior for a VQ-VAE)."""
        if self.variant.grid_prior:
            return self.code_prior is not None
        return self.variant.generative or self.fitted_prior is not None

    def _fitted_arrays(self):
        prior = self.fitted_prior
        return tuple(jnp.asarray(a, jnp.float32) for a in (prior.weights, prior.means, prior.covariances))

    def sample(self, key: jax.Array, n: int, labels=None):
        if self.variant.grid_prior:
            if self.code_prior is None:
                raise NoPriorError(f"model {self.config.model!r} samples through a prior over its codes, fitted "
                                   f"after training: run python -m aejax.prior --workdir={self.workdir or 'DIR'}")
            return self._sample_grid(self.params, self.code_prior.params, key, int(n))
        if self.variant.generative:
            return self._sample(self.params, key, int(n), *self._labels(labels, int(n), needed=False))
        if self.fitted_prior is not None:
            return self._sample_fitted(self.params, self._fitted_arrays(), key, int(n))
        if self.variant.probabilistic_encoder:
            raise ValueError(f"model {self.config.model!r} has no prior to sample from")
        raise NoPriorError(f"model {self.config.model!r} is a deterministic autoencoder with no prior yet: fit one "
                           f"to its training codes with python -m aejax.fit_prior --workdir={self.workdir or 'DIR'}")

    def compile_figures(self, num_images: int, key: jax.Array, params=None) -> None:
        """Compiles reconstruct (of float [0, 1] images) and sample for `num_images`, without running them.

        The training loop calls it from a background thread, so its figures are
        ready when first drawn; `params` (default: this model's) may be shapes.
        """
        params = self.params if params is None else params
        images = jax.ShapeDtypeStruct((num_images, *self.image_shape), jnp.float32)
        labels = (jax.ShapeDtypeStruct((num_images,), jnp.int32),) if self.variant.conditional else ()
        self._reconstruct.lower(params, images, *labels).compile()
        if self.variant.generative:
            self._sample.lower(params, key, num_images).compile()
        elif self.fitted_prior is not None:
            self._sample_fitted.lower(params, self._fitted_arrays(), key, num_images).compile()


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
    code_prior = prior_store.load(workdir) if objectives.get(config.model).grid_prior else None
    return TrainedModel(config, state.params, int(state.step), fitted_prior(workdir, int(state.step)), workdir,
                        code_prior=code_prior)


def fitted_prior(workdir: str, step: int) -> gaussian_mixture.GaussianMixture | None:
    """The ex-post prior fitted to the codes of checkpoint `step`, if python -m aejax.fit_prior saved one.

    A prior fitted at another step is for other codes: a warning, and none.
    """
    path = os.path.join(workdir, gaussian_mixture.PRIOR_FILE)
    if not os.path.exists(path):
        return None
    prior = gaussian_mixture.load(path)
    if prior.step != step:
        logging.warning("%s was fitted to the codes of step %d, not of step %d: not used (rerun "
                        "python -m aejax.fit_prior --workdir=%s)", path, prior.step, step, workdir)
        return None
    return prior


def load_config(workdir: str) -> ml_collections.ConfigDict:
    with open(os.path.join(workdir, "config.json")) as f:
        return ml_collections.ConfigDict(json.load(f))
