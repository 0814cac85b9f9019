"""The data an evaluation runs on, and the codes of a trained model for it.

The run's own binarisation decides what the model sees (`DATA_CONVENTIONS`,
stated in eval.json); grey levels are kept beside it for pixel baselines and
figures.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from aejax.core.batching import map_batches
from aejax.data import batches, splits
from aejax.data.catalog import eval_split_of

# Key stream (of PRNGKey(config.data_seed)) of the one binarisation draw of eval data.
EVAL_BINARIZATION_STREAM = 3

# How the evaluation data are made from the run's `config.binarize`, stated in eval.json.
DATA_CONVENTIONS = {
    "dynamic": "binarised once: one fixed Bernoulli draw per pixel (key: PRNGKey(data_seed), "
               "stream 3), the same test set for every K, every step and every run of that data_seed",
    "static": "the run's static binarisation (one Bernoulli draw per pixel with seed data_seed)",
    "none": "grey levels in [0, 1]; a Bernoulli likelihood of grey pixels is a cross-entropy, "
            "not a normalised density, so its 'log p(x)' is not comparable with binarised results",
}

@dataclasses.dataclass(frozen=True)
class EvalData:
    """One split as the model sees it (`x`) and as grey levels (`grey`), both float in [0, 1]."""
    name: str
    x: np.ndarray
    grey: np.ndarray
    labels: np.ndarray


def evaluation_split(config) -> str:
    """The split the run evaluated on in training: 'test', or what the dataset declares (dSprites)."""
    return eval_split_of(config.dataset)[0]


def load_eval_data(config, split: str, max_examples: int = 0) -> EvalData:
    """`split` binarised by the run's convention (DATA_CONVENTIONS), once and reproducibly."""
    # The dataset's declared eval examples (all of 'test', or dSprites' fixed subset of 'train').
    arrays = splits.load_eval(config) if split == evaluation_split(config) else splits.load(config, split)
    images, labels = arrays.images, arrays.labels
    if max_examples:
        images, labels = images[:max_examples], labels[:max_examples]
    key = jax.random.fold_in(jax.random.PRNGKey(config.get("data_seed", 0)), EVAL_BINARIZATION_STREAM)
    x = np.asarray(batches.preprocess_eval(jnp.asarray(images), key, config.binarize))
    grey = np.asarray(batches.to_unit_interval(jnp.asarray(images)))
    return EvalData(split, x, grey, np.asarray(labels))


def encode_all(trained, x: np.ndarray, batch_size: int, labels: np.ndarray | None = None):
    """The encoder's output for every image: (mean, logvar) for the VAE family, else z.

    A conditional variant (cvae) encodes q(z | x, y): it needs the int `labels` of `x`.
    """
    if not trained.variant.conditional:
        return map_batches(lambda batch, i: trained.encode(batch), x, batch_size)
    if labels is None:
        raise ValueError(f"model {trained.config.model!r} is conditional: encoding needs the labels of the images")
    return map_batches(lambda idx, i: trained.encode(x[idx], labels=labels[idx]), np.arange(len(x)), batch_size)


def codes_of(trained, encoded):
    return encoded[0] if trained.variant.probabilistic_encoder else encoded
