"""A small conv classifier whose penultimate layer is the feature space of sample-quality metrics.

No Inception weights exist offline, so aejax trains this network once on
Fashion-MNIST (`aejax.evaluation.feature_classifier`) and measures Fréchet
distance and precision/recall on its `features` (`aejax.evaluation.sample_quality`).
Two stride-2 3x3 convs (28 → 14 → 7) keep a CPU epoch short; the features are the
ReLU activations of the dense layer before the softmax head.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


class FeatureClassifier(nn.Module):
    """images [B, H, W, C] in [0, 1] -> logits [B, num_classes]; `features` -> [B, feature_dim]."""
    conv_channels: Sequence[int] = (32, 64)
    feature_dim: int = 128
    num_classes: int = 10

    def setup(self):
        self.convs = [nn.Conv(c, (3, 3), strides=(2, 2), padding="SAME", name=f"conv{i}")
                      for i, c in enumerate(self.conv_channels)]
        self.dense = nn.Dense(self.feature_dim, name="features")
        self.head = nn.Dense(self.num_classes, name="head")

    def features(self, x: jnp.ndarray) -> jnp.ndarray:
        for conv in self.convs:
            x = nn.relu(conv(x))
        return nn.relu(self.dense(x.reshape(len(x), -1)))

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return self.head(self.features(x))
