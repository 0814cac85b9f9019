"""Orbax checkpoints under `workdir/checkpoints`: train state + run metadata.

The metadata (config and the shape signature of the state) is what lets a
resumed run refuse a checkpoint written by an incompatible config instead of
silently mixing parameters, and what `aejax.load` rebuilds the model from.
Orbax writes each step to a temporary directory and renames it when complete,
so a run killed at any moment leaves only whole checkpoints behind.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from aejax.core.errors import IncompatibleCheckpointError
from aejax.training.state import shape_signature


class _DropOrbaxInfo(logging.Filter):
    """Orbax logs every save and load at INFO; keep its warnings, drop the chatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "orbax" not in record.pathname:
            return True
        return record.levelno >= logging.WARNING and "read_only" not in record.getMessage() \
            and "read only" not in record.getMessage()


def quiet_orbax() -> None:
    absl_logger = logging.getLogger("absl")
    if not any(isinstance(f, _DropOrbaxInfo) for f in absl_logger.filters):
        absl_logger.addFilter(_DropOrbaxInfo())


def _config_diff(stored: dict, current: dict) -> list[str]:
    keys = sorted(set(stored) | set(current))
    return [f"{k}: checkpoint {stored.get(k)!r} vs now {current.get(k)!r}"
            for k in keys if json.dumps(stored.get(k)) != json.dumps(current.get(k))]


def _restore_target(leaf: Any) -> jax.ShapeDtypeStruct:
    """Shape, dtype and sharding to restore a leaf to: its own sharding, else the first local
    device (so a checkpoint written on another device topology still loads)."""
    target = ocp.utils.to_shape_dtype_struct(leaf)
    if getattr(target, "sharding", None) is not None:
        return target
    return jax.ShapeDtypeStruct(target.shape, target.dtype,
                                sharding=jax.sharding.SingleDeviceSharding(jax.local_devices()[0]))


class Checkpointer:
    """A thin CheckpointManager wrapper: save, latest step, restore with checks."""

    def __init__(self, workdir: str, *, max_to_keep: int = 3, read_only: bool = False):
        quiet_orbax()
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=not read_only, read_only=read_only,
            enable_async_checkpointing=not read_only)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, config_dict: dict) -> None:
        meta = {"config": config_dict, "shapes": shape_signature(state)}
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def metadata(self, step: int | None = None) -> dict:
        step = self._resolve(step)
        return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore(self, abstract_state: Any, config_dict: dict, step: int | None = None) -> Any:
        """The state at `step` (latest by default), refused if its shapes differ."""
        step = self._resolve(step)
        meta = self.metadata(step)
        if meta["shapes"] != shape_signature(abstract_state):
            diff = _config_diff(meta["config"], config_dict)
            raise IncompatibleCheckpointError(
                f"the checkpoint at step {step} in {self.directory} was written by a config whose "
                f"model or optimiser has other shapes; config differences: {'; '.join(diff) or 'none'}. "
                "Use a fresh --workdir for this config, or rerun with the checkpoint's config.")
        abstract = jax.tree_util.tree_map(_restore_target, abstract_state)
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract)))
        return restored["state"]

    def _resolve(self, step: int | None) -> int:
        steps = self.all_steps()
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}; train a run there first "
                                    "(python -m aejax.main --config=... --workdir=...)")
        if step is None:
            return max(steps)
        if step not in steps:
            raise FileNotFoundError(f"no checkpoint for step {step} in {self.directory}; "
                                    f"available steps: {steps}")
        return step
