"""Fit the PixelCNN prior over a trained VQ-VAE's code grids: what `python -m aejax.prior` runs.

    python -m aejax.prior --workdir=DIR

The run's encoder and codebook are frozen: every training image becomes its
grid of code indices k(x) (the nearest codebook entries), and a gated PixelCNN
(aejax.models.pixelcnn) learns p(k) = Π_i p(k_i | k_<i) on them by maximum
likelihood (Adam, shuffled mini-batches). It is saved under DIR/prior/
(aejax.training.prior_store), after which `aejax.load(DIR).sample(key, n)`
draws grids from it ancestrally and decodes them.

The report (DIR/prior/report.json) gives the prior's negative log-likelihood
of the train and test code grids in bits per code position, beside two
baselines: log₂ K (codes uniform) and the entropy of the train split's code
frequencies (codes independent, each distributed as the codebook's usage; the
log₂ of its perplexity). It also gives the codebook usage over each whole
split: perplexity and dead codes (codes no position of the split uses).
"""
from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from aejax.core.batching import map_batches
from aejax.core.errors import ConfigError
from aejax.evaluation.inputs import evaluation_split, load_eval_data
from aejax.models import pixelcnn
from aejax.training import prior_store
from aejax.training.restore import TrainedModel, load


@dataclasses.dataclass(frozen=True)
class PriorOptions:
    """The PixelCNN's size and how it is trained (small enough for a CPU: about 1.5 min an epoch on 2 busy cores)."""
    channels: int = 32
    num_layers: int = 3
    num_epochs: int = 5
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0
    max_examples: int = 0   # train on the first N training images (0 = all)


def code_grids(trained: TrainedModel, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """The code index grid k(x) [N, h, w] (int32) of every image."""
    indices = jax.jit(lambda params, batch: trained.model.apply(params, batch, method="indices"))
    return map_batches(lambda batch, i: indices(trained.params, batch), x, batch_size)


def codebook_usage(codes: np.ndarray, num_codes: int) -> dict:
    """Perplexity exp(H) of the code frequencies over all positions of `codes`, and the codes never used."""
    counts = np.bincount(codes.reshape(-1), minlength=num_codes).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return {"perplexity": float(np.exp(-np.sum(p * np.log(p)))), "dead_codes": int(np.sum(counts == 0)),
            "num_codes": num_codes}


def mean_bits_per_dim(model, params, codes: np.ndarray, batch_size: int = 500) -> float:
    """−log₂ p(k) per code position, averaged over every grid of `codes`."""
    log_p = jax.jit(lambda params, batch: pixelcnn.log_likelihood(model, params, batch))
    per_grid = map_batches(lambda batch, i: log_p(params, batch), codes, batch_size)
    return float(-np.mean(per_grid) / (math.log(2) * np.prod(codes.shape[1:])))


def train_prior(spec: prior_store.PriorSpec, codes: np.ndarray, options: PriorOptions):
    """PixelCNN params fitted to `codes` [N, h, w] by Adam on the mean bits per position."""
    model = spec.build()
    key = jax.random.PRNGKey(options.seed)
    params = model.init(jax.random.fold_in(key, 0), jnp.zeros((1, *spec.grid_shape, spec.num_codes)))
    tx = optax.adam(options.learning_rate)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, batch):
        def loss_fn(p):
            return pixelcnn.bits_per_dim(pixelcnn.log_likelihood(model, p, batch), spec.grid_shape)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    batch_size = min(options.batch_size, len(codes))
    rng = np.random.default_rng(options.seed)
    for epoch in range(options.num_epochs):
        order, losses = rng.permutation(len(codes)), []
        for start in range(0, len(codes) - batch_size + 1, batch_size):
            params, opt_state, loss = step(params, opt_state, jnp.asarray(codes[order[start:start + batch_size]]))
            losses.append(loss)
        logging.info("prior epoch %d/%d: %.4f bits per code position (train, running mean)", epoch + 1,
                     options.num_epochs, float(np.mean(jax.device_get(losses))))
    return model, params


def fit(workdir: str, options: PriorOptions = PriorOptions()) -> dict:
    """Fits, saves (DIR/prior/) and returns the report of the prior of the run in `workdir`."""
    start = time.time()
    trained = load(workdir)
    if not trained.variant.grid_prior:
        raise ConfigError(f"model {trained.config.model!r} has no code grid to fit a prior over; "
                          "python -m aejax.prior is for vq_vae runs")
    config = trained.config
    train = load_eval_data(config, "train", options.max_examples)
    test = load_eval_data(config, evaluation_split(config))
    train_codes, test_codes = code_grids(trained, train.x), code_grids(trained, test.x)
    spec = prior_store.PriorSpec(int(config.num_codes), tuple(int(s) for s in train_codes.shape[1:]),
                                 options.channels, options.num_layers)
    model, params = train_prior(spec, train_codes, options)
    train_usage = codebook_usage(train_codes, spec.num_codes)
    report = {
        "workdir": workdir, "step": trained.step, "spec": dataclasses.asdict(spec),
        "options": dataclasses.asdict(options), "num_train_grids": len(train_codes), "num_test_grids": len(test_codes),
        "units": "bits per code position (−log₂ p(k) / (h·w))",
        "train_bits_per_dim": mean_bits_per_dim(model, params, train_codes),
        "test_bits_per_dim": mean_bits_per_dim(model, params, test_codes),
        "uniform_bits_per_dim": math.log2(spec.num_codes),
        "independent_codes_bits_per_dim": math.log2(train_usage["perplexity"]),
        "codebook_usage": {"train": train_usage, "test": codebook_usage(test_codes, spec.num_codes)},
    }
    report["seconds"] = round(time.time() - start, 1)
    prior_store.save(workdir, spec, params, report)
    return report
