"""Where metrics and images go: metrics.jsonl and TensorBoard events (`aejax.training.events`)."""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

import numpy as np
from absl import logging

from aejax.core.errors import WorkdirError
from aejax.core.files import atomic_write

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
        """Drop records logged after `step` (a resumed run rewrites them), and a torn last line."""
        if not os.path.exists(self.path):
            return
        records = _parse(self.path)
        kept = "".join(json.dumps(r) + "\n" for r in records if r["step"] <= step)
        with open(self.path) as f:
            if f.read() != kept:
                atomic_write(self.path, kept)

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


def _parse(path: str) -> list[dict]:
    """The records of a metrics.jsonl; a torn last line (a process killed mid-write) is skipped
    with a warning, a damaged line elsewhere is an error naming it."""
    with open(path) as f:
        lines = [line for line in f.read().split("\n") if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            if number < len(lines):
                raise WorkdirError(f"{path}, line {number}, is not a JSON record ({line[:60]!r}); "
                                   "repair or delete that line") from None
            logging.warning("%s: ignoring its torn last line %r (the process writing it was stopped)",
                            path, line[:60])
    return records


def read_metrics(workdir: str) -> list[dict]:
    return _parse(os.path.join(workdir, "metrics.jsonl"))
