"""Unsupervised pretraining then a classifier: python -m aejax.pretrain --config=experiments/pretrain_classifier.py --workdir=DIR.

Phase 1: the stacked AE of stacked_ae.py (784-512-256-32) on all 60,000 Fashion-MNIST
training images, no labels, 10 epochs. Phase 2: its encoder + a softmax head on 100, 1,000 and
all 60,000 labelled images (2,000 Adam steps of batch 128 each), frozen or
fine-tuned, against the same net from scratch.
`python -m aejax.main` with this config runs phase 1 alone.
"""
import ml_collections

from experiments import stacked_ae


def get_config(size=None):
    c = stacked_ae.get_config(size)
    c.num_epochs = 10
    c.classifier = ml_collections.ConfigDict({
        "num_labels": (100, 1000, -1),   # labelled training examples (class-balanced); -1 = all
        "finetune": (False, True),       # pretrained encoder: frozen, fine-tuned (or both)
        "num_steps": 2000,               # Adam steps per classifier
        "batch_size": 128,
        "learning_rate": 1e-3,
        "seed": 0,
    })
    if size == "smoke":
        c.classifier.num_labels = (50, -1)
        c.classifier.num_steps = 20
        c.classifier.batch_size = 32
    return c
