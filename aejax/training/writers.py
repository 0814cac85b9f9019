"""Where metrics and images go: metrics.jsonl and TensorBoard events (`aejax.training.events`)."""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

import numpy as np

from aejax.training.events import EventFile


def _jsonable(value: Any) -> Any:
    array = np.asarray(value)
    return float(array) if array.ndim == 0 else array.tolist()


class MetricWriter:
    """Appends one JSON object per logged step and mirrors scalars to TensorBoard."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tensorboard = EventFile(os.path.join(workdir, "tensorboard"))

    def truncate_after(self, step: int) -> None:
        """Drop records logged after `step` (a resumed run rewrites them)."""
        if not os.path.exists(self.path):
            return
        with open(self.path) as f:
            kept = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(kept)
        os.replace(tmp, self.path)

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        record = {"step": int(step), **{k: _jsonable(v) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        self._tensorboard.scalars(step, {name: value for name, value in record.items()
                                         if name != "step" and isinstance(value, float)})

    def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        """uint8 [H, W, C] images."""
        self._tensorboard.images(step, dict(images))

    def close(self) -> None:
        self._tensorboard.close()


def read_metrics(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]
