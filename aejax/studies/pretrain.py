"""Unsupervised pretraining, then a classifier on few labels: what `python -m aejax.pretrain` runs.

    python -m aejax.pretrain --config=experiments/pretrain_classifier.py --workdir=DIR

Phase 1 trains the config's autoencoder on every training image, without
labels, through the normal trainer in DIR/autoencoder (checkpointed and
resumable like any run). Phase 2 puts a softmax head on the autoencoder's
encoder layers (the whole encoder, code layer included) and trains it on
`num_labels` labelled training images (a class-balanced subset; -1 = all),
for each entry of `config.classifier.num_labels`, as

* pretrained, encoder frozen (`finetune=False`: only the head learns),
* pretrained, fine-tuned (`finetune=True`: every layer learns),
* the same network from scratch (the baseline),

and reports test accuracy on the whole test split. Finished runs are kept in
DIR/results.json (a rerun with the same `config.classifier` skips them) and
tabulated in DIR/results.md.
"""
from __future__ import annotations

import json
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from aejax import models
from aejax.core.errors import ConfigError
from aejax.core.files import atomic_write
from aejax.data import batches, splits
from aejax.data.builders import stratified_split
from aejax.data.catalog import dataset_info
from aejax.training.loop import train_and_evaluate
from aejax.training.restore import load

RUNS = (("pretrained", False), ("pretrained", True), ("scratch", True))   # (initialisation, finetune)


class Classifier(nn.Module):
    """Encoder layers (as the autoencoder builds them) followed by a linear softmax head."""
    encoder: nn.Module
    num_classes: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.num_classes, name="head")(self.encoder(x))


def labelled_subset(labels: np.ndarray, num_labels: int, seed: int) -> np.ndarray:
    """Indices of `num_labels` examples, equally many per class (all if num_labels == -1)."""
    if num_labels == -1:
        return np.arange(len(labels))
    num_classes = len(np.unique(labels))
    if num_labels % num_classes or not 0 < num_labels <= len(labels):
        raise ConfigError(f"classifier.num_labels={num_labels} must be -1 or a positive multiple of "
                          f"the {num_classes} classes, at most {len(labels)}")
    return stratified_split(labels, num_labels // num_classes, seed=seed)[1]


def _optimizer(learning_rate, finetune):
    """Adam on the head, and on the encoder only when fine-tuning (else its updates are zero)."""
    def label(params):
        return {"params": {name: jax.tree_util.tree_map(
            lambda _: "train" if finetune or name != "encoder" else "frozen", tree)
            for name, tree in params["params"].items()}}
    return optax.multi_transform({"train": optax.adam(learning_rate), "frozen": optax.set_to_zero()}, label)


def train_classifier(config, encoder_params, train_split, test_split, num_labels: int,
                     finetune: bool) -> dict:
    """Train one classifier; encoder_params=None starts from scratch. Returns its test accuracy."""
    cc = config.classifier
    num_classes = dataset_info(config.dataset).num_classes
    model = Classifier(models.build("encoder", config, train_split.image_shape), num_classes)
    key = jax.random.PRNGKey(cc.seed)
    init_key, data_key, step_key = jax.random.split(key, 3)
    params = model.init(init_key, jnp.zeros((1, *train_split.image_shape)))
    if encoder_params is not None:
        params = {"params": {**params["params"], "encoder": encoder_params}}
    subset = labelled_subset(np.asarray(train_split.labels), num_labels, cc.seed)
    images, labels = jnp.asarray(train_split.images[subset]), jnp.asarray(train_split.labels[subset])
    batch_size = min(cc.batch_size, len(subset))
    optimizer = _optimizer(cc.learning_rate, finetune)

    def loss_fn(params, x, y):
        logits = model.apply(params, x)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    @jax.jit
    def fit(params, images, labels):
        indices = batches.batch_indices(data_key, jnp.asarray(0), cc.num_steps, len(subset), batch_size)

        def step(carry, inputs):
            params, opt_state = carry
            batch_indices, index = inputs
            x = batches.preprocess(images[batch_indices], jax.random.fold_in(step_key, index), config.binarize)
            loss, grads = jax.value_and_grad(loss_fn)(params, x, labels[batch_indices])
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)),
                                           (indices, jnp.arange(cc.num_steps)))
        return params, losses

    @jax.jit
    def correct(params, x, y):
        return jnp.sum(jnp.argmax(model.apply(params, batches.to_unit_interval(x)), -1) == y)

    start = time.perf_counter()
    params, losses = fit(params, images, labels)
    hits = sum(int(correct(params, test_split.images[i:i + 1000], test_split.labels[i:i + 1000]))
               for i in range(0, test_split.num_examples, 1000))
    return {"num_labels": len(subset), "test_accuracy": hits / test_split.num_examples,
            "final_train_loss": float(losses[-1]), "seconds": round(time.perf_counter() - start, 1)}


def results_table(runs: list[dict]) -> str:
    """Markdown: one row per labelled-set size, test accuracy of each way of training."""
    columns = [("scratch", True, "from scratch"), ("pretrained", False, "pretrained, frozen encoder"),
               ("pretrained", True, "pretrained, fine-tuned")]
    lines = ["| labelled examples | " + " | ".join(title for *_, title in columns) + " |",
             "|---:|" + "---:|" * len(columns)]
    for n in sorted({r["num_labels"] for r in runs}):
        cells = []
        for init, finetune, _ in columns:
            match = [r for r in runs if (r["num_labels"], r["init"], r["finetune"]) == (n, init, finetune)]
            cells.append(f"{100 * match[0]['test_accuracy']:.1f}%" if match else "–")
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
    """Phase 1 (resumable autoencoder run), then every phase-2 classifier not yet in results.json."""
    autoencoder_dir = os.path.join(workdir, "autoencoder")
    autoencoder_config = ml_collections.ConfigDict(
        {k: v for k, v in config.to_dict().items() if k != "classifier"})  # phase 2 reads the rest
    autoencoder_eval = train_and_evaluate(autoencoder_config, autoencoder_dir)
    ae_params = load(autoencoder_dir).params["params"]
    if "encoder" not in ae_params:
        raise ConfigError(f"model {config.model!r} has no separate encoder to reuse; pretrain an "
                          "autoencoder with encoder/decoder submodules (e.g. stacked_ae, untied)")
    train_split, test_split = splits.load(config, "train"), splits.load(config, "test")
    results_path = os.path.join(workdir, "results.json")
    stored = json.load(open(results_path)) if os.path.exists(results_path) else {}
    # Finished classifiers are reused only if they were trained with the same phase-2 settings.
    settings = json.loads(json.dumps(config.classifier.to_dict()))
    runs = stored["runs"] if stored.get("classifier") == settings else []
    for requested in config.classifier.num_labels:
        for init, finetune in RUNS:
            if finetune not in config.classifier.finetune and init == "pretrained":
                continue
            done = [r for r in runs if (r["requested_labels"], r["init"], r["finetune"]) == (requested, init, finetune)]
            if done:
                continue
            result = train_classifier(config, ae_params["encoder"] if init == "pretrained" else None,
                                      train_split, test_split, requested, finetune)
            runs.append({"requested_labels": requested, "init": init, "finetune": finetune, **result})
            logging.info("%s labels, %s%s: test accuracy %.4f (%.0fs)", result["num_labels"], init,
                         " fine-tuned" if finetune and init == "pretrained" else "",
                         result["test_accuracy"], result["seconds"])
            atomic_write(results_path, json.dumps(  # whole or not at all: a rerun resumes from it
                {"runs": runs, "autoencoder_eval": {k: float(v) for k, v in autoencoder_eval.items()
                                                    if np.ndim(v) == 0},
                 "classifier": settings}, indent=2))
    atomic_write(os.path.join(workdir, "results.md"), results_table(runs))
    return runs
