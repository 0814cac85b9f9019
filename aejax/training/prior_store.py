"""A prior fitted after training, kept next to the run: `<workdir>/prior/`, written atomically.

A VQ-VAE samples through a PixelCNN over its code grids, trained on the frozen
codes by `python -m aejax.prior` (aejax.studies.code_prior). Its params and
the settings that rebuild it live in one msgpack file, replaced whole (a reader
sees the old prior or the new one, never half), with a readable report.json
beside it. `aejax.load(workdir)` attaches it (`load`), so `sample` works.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import flax.serialization
import jax

from aejax.models import pixelcnn
from aejax.core.files import atomic_write

PRIOR_DIR = "prior"
PARAMS_FILE = "pixelcnn.msgpack"
REPORT_FILE = "report.json"


@dataclasses.dataclass(frozen=True)
class PriorSpec:
    """What rebuilds the PixelCNN: the codebook size, the code grid and the network's size."""
    num_codes: int
    grid_shape: tuple[int, int]
    channels: int = 32
    num_layers: int = 3

    def build(self) -> pixelcnn.GatedPixelCNN:
        return pixelcnn.GatedPixelCNN(self.num_codes, self.channels, self.num_layers)


@dataclasses.dataclass(frozen=True)
class CodePrior:
    """A fitted PixelCNN prior: `sample_indices(params, key, n)` draws n code grids (pure, jit-able)."""
    spec: PriorSpec
    params: Any

    def sample_indices(self, params, key, n: int):
        return pixelcnn.sample(self.spec.build(), params, key, n, self.spec.grid_shape)


def prior_dir(workdir: str) -> str:
    return os.path.join(workdir, PRIOR_DIR)


def save(workdir: str, spec: PriorSpec, params: Any, report: dict) -> str:
    """Writes the prior (and its report) under `<workdir>/prior/`; returns that directory."""
    directory = prior_dir(workdir)
    os.makedirs(directory, exist_ok=True)
    payload = {"spec": json.dumps(dataclasses.asdict(spec)), "params": jax.device_get(params)}
    atomic_write(os.path.join(directory, PARAMS_FILE), flax.serialization.msgpack_serialize(payload))
    atomic_write(os.path.join(directory, REPORT_FILE), json.dumps(report, indent=2))
    return directory


def load(workdir: str) -> CodePrior | None:
    """The prior fitted for the run in `workdir`, or None if there is none yet."""
    path = os.path.join(prior_dir(workdir), PARAMS_FILE)
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        payload = flax.serialization.msgpack_restore(f.read())
    spec = json.loads(payload["spec"])
    return CodePrior(PriorSpec(**{**spec, "grid_shape": tuple(spec["grid_shape"])}), payload["params"])
