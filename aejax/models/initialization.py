"""How the parameters start: flax's initialisers, or PyTorch's, by name (`config.param_init`).

flax's `nn.Dense`/`nn.Conv` draw kernels from lecun-normal (variance 1/fan_in) and
set biases to 0; PyTorch's `nn.Linear`/`nn.Conv2d` draw both from
uniform(±1/√fan_in) (its kaiming-uniform with a = √5 works out to that bound).
The two differ in the kernels' scale (variance 1/(3·fan_in) against 1/fan_in) and
in the biases, and so in where Adam starts. "torch" redraws every module's
`kernel` (fan_in = the product of all but its last axis, the flax layout for
dense and conv kernels) and `bias` (with that kernel's fan_in) after flax's
init; any other parameter (a codebook, pseudo-inputs) keeps flax's draw.
"keras" is Keras's default (Dense/Conv2D): glorot-uniform kernels,
uniform(±√(6/(fan_in + fan_out))), and zero biases; published Keras models
(N2D, DEC) start there.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import traverse_util

from aejax.core.options import Option, one_of


def _flax(params, key):
    del key
    return params


def _torch(params, key):
    flat = traverse_util.flatten_dict(params)
    out = dict(flat)
    modules = sorted({path[:-1] for path in flat if path[-1] == "kernel"})
    for index, module in enumerate(modules):
        kernel = flat[module + ("kernel",)]
        bound = 1.0 / math.sqrt(math.prod(kernel.shape[:-1]))
        kernel_key, bias_key = jax.random.split(jax.random.fold_in(key, index))
        out[module + ("kernel",)] = jax.random.uniform(kernel_key, kernel.shape, kernel.dtype, -bound, bound)
        if module + ("bias",) in flat:
            bias = flat[module + ("bias",)]
            out[module + ("bias",)] = jax.random.uniform(bias_key, bias.shape, bias.dtype, -bound, bound)
    return traverse_util.unflatten_dict(out)


def _keras(params, key):
    flat = traverse_util.flatten_dict(params)
    out = dict(flat)
    for index, path in enumerate(sorted(p for p in flat if p[-1] == "kernel")):
        kernel = flat[path]
        receptive = math.prod(kernel.shape[:-2])  # 1 for a dense kernel, kh·kw for a conv kernel
        bound = math.sqrt(6.0 / (receptive * (kernel.shape[-2] + kernel.shape[-1])))
        out[path] = jax.random.uniform(jax.random.fold_in(key, index), kernel.shape, kernel.dtype, -bound, bound)
        if path[:-1] + ("bias",) in flat:
            out[path[:-1] + ("bias",)] = jnp.zeros_like(flat[path[:-1] + ("bias",)])
    return traverse_util.unflatten_dict(out)


SCHEMES = {"flax": _flax, "torch": _torch, "keras": _keras}

OPTIONS = {
    "param_init": Option("flax", one_of(SCHEMES),
                         "flax (lecun-normal kernels, zero biases) | torch (uniform(±1/√fan_in) kernels and biases) | "
                         "keras (glorot-uniform kernels, zero biases)"),
}


def initialize(params, scheme: str, key: jax.Array):
    """`params` (as `model.init` made them) redrawn by `scheme`; "flax" returns them unchanged."""
    return SCHEMES[scheme](params, key)

