"""Independent numpy re-implementations that several tests check the models against."""
import numpy as np


def dense_layers(tree):
    """[(kernel, bias)] in float64 of a flax MLP's dense_0, dense_1, ... parameters."""
    return [(np.asarray(tree[f"dense_{i}"]["kernel"], np.float64), np.asarray(tree[f"dense_{i}"]["bias"], np.float64))
            for i in range(len(tree))]


def numpy_mlp(layers, h, activate_last):
    """ReLU between the layers (and after the last one if `activate_last`)."""
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1 or activate_last:
            h = np.maximum(h, 0)
    return h
