"""Unsupervised pretraining then a classifier: the command's phases, subsets and results."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aejax.studies import pretrain
from experiments import pretrain_classifier


def test_labelled_subset_is_class_balanced():
    labels = np.repeat(np.arange(10), 50)
    subset = pretrain.labelled_subset(labels, 100, seed=0)
    assert len(set(subset.tolist())) == 100 and np.all(np.bincount(labels[subset]) == 10)
    assert len(pretrain.labelled_subset(labels, -1, seed=0)) == 500


def test_frozen_encoder_receives_no_update_and_finetuned_does():
    params = {"params": {"encoder": {"w": jnp.ones(3)}, "head": {"w": jnp.ones(2)}}}
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    for finetune in (False, True):
        optimizer = pretrain._optimizer(0.1, finetune)
        updates, _ = optimizer.update(grads, optimizer.init(params), params)
        new = optax.apply_updates(params, updates)
        assert np.array_equal(new["params"]["encoder"]["w"], params["params"]["encoder"]["w"]) != finetune
        assert not np.array_equal(new["params"]["head"]["w"], params["params"]["head"]["w"])


def test_pretraining_command_runs_every_classifier_and_resumes(tmp_path):
    config = pretrain_classifier.get_config("smoke")
    config.classifier.num_labels = (50,)
    runs = pretrain.run(config, str(tmp_path))
    assert sorted((r["init"], r["finetune"]) for r in runs) == [
        ("pretrained", False), ("pretrained", True), ("scratch", True)]
    assert all(r["num_labels"] == 50 and 0 <= r["test_accuracy"] <= 1 for r in runs)
    table = open(tmp_path / "results.md").read()
    assert "| 50 |" in table and "fine-tuned" in table
    assert os.path.isdir(tmp_path / "autoencoder" / "checkpoints")
    # A rerun finds phase 1 and every classifier done and recomputes nothing.
    again = pretrain.run(config, str(tmp_path))
    assert again == runs == json.load(open(tmp_path / "results.json"))["runs"]
