"""Orbax checkpoints under `workdir/checkpoints`: train state + run metadata, verified on restore.

The metadata (config, the shape signature of the state, a checksum of every
array) is what lets a resumed run refuse a checkpoint written by an
incompatible config instead of silently mixing parameters, what `aejax.load`
rebuilds the model from, and what finds a damaged checkpoint: a restore first
compares the checkpoint's files with the sizes and checksums listed when it was
finished (`FILES`: a deleted, truncated or changed file is named before orbax
reads anything), then reads the arrays and compares their checksums
(`aejax.training.integrity`: the state restored is the state saved). Training
falls back to the newest checkpoint that verifies, moving the damaged ones to
`workdir/damaged_checkpoints/`; `aejax.load` names the steps that verify.

Orbax writes each step to a temporary directory and renames it when complete,
so a run killed at any moment leaves only whole checkpoints behind. The run
stops with one line when the next checkpoint would not fit on the disk (checked
after every chunk), or when a save fails all the same.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp
from absl import logging as absl_logging

from aejax.core import parallel
from aejax.core.errors import (DamagedCheckpointError, DiskFullError, IncompatibleCheckpointError,
                               WorkdirError)
from aejax.core.files import atomic_write
from aejax.data import batches
from aejax.training import integrity
from aejax.training.orbax_output import NO_SPACE, drop_the_failed_saves_coroutines, quiet_orbax
from aejax.training.state import shape_signature
from aejax.training.workdir import OUTPUT_ROOM, UNFINISHED_CHECKPOINT

DAMAGED_DIR = "damaged_checkpoints"
FILES = "aejax_files.json"  # in each finished step folder: {relative path: [size, crc32]} of its files


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


def _first_line(error: BaseException, limit: int = 200) -> str:
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    text = f"{type(error).__name__}: {text}" if not isinstance(error, (ValueError, OSError)) else text
    return text if len(text) <= limit else text[:limit] + "..."


def megabytes(num_bytes: float) -> str:
    return f"{num_bytes / 2**20:.1f} MiB"


def _tree_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


class Checkpointer:
    """A thin CheckpointManager wrapper: save with checksums, latest step, verified restore."""

    def __init__(self, workdir: str, *, max_to_keep: int = 3, read_only: bool = False):
        quiet_orbax()
        self.workdir = os.path.abspath(workdir)
        self.directory = os.path.join(self.workdir, "checkpoints")
        self._read_only = read_only
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=not read_only, read_only=read_only,
            enable_async_checkpointing=not read_only)
        self._manager = ocp.CheckpointManager(self.directory, options=options)
        self._saving: tuple[int, int] | None = None  # (step, bytes needed) of the save in flight
        self._sizes: dict[int, int] = {}  # bytes on disk of finished checkpoints, by step
        self._metas: dict[int, dict] = {}  # metadata of checkpoints whose files were checked, by step

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    # ------------------------------------------------------------- save ----

    def bytes_needed(self, state: Any) -> int:
        """About what the next checkpoint takes on disk (the size of the latest finished one, else the
        arrays' bytes plus orbax's per-array metadata), plus `OUTPUT_ROOM` for the metrics, figures and
        TensorBoard events written until then: the run stops before any of those writers fails."""
        for step in reversed(self.all_steps()):
            folder = os.path.join(self.directory, str(step))
            if os.path.isdir(folder):
                if step not in self._sizes:
                    self._sizes[step] = _tree_size(folder)
                return self._sizes[step] + OUTPUT_ROOM
        leaves = jax.tree_util.tree_leaves(state)
        return sum(x.nbytes for x in leaves) + 2048 * len(leaves) + 65536 + OUTPUT_ROOM

    def _check_space(self, step: int, state: Any) -> int:
        """DiskFullError unless the next checkpoint fits (agreed over processes); the bytes needed."""
        needed = self.bytes_needed(state)
        free = shutil.disk_usage(self.directory).free
        if parallel.max_over_processes(int(free < needed)):
            latest = self.latest_finished()
            kept = f"latest: step {latest}" if latest is not None else "there are none yet"
            raise DiskFullError(
                f"stopping after step {step}: the next checkpoint would not fit in {self.directory} "
                f"({megabytes(free)} free, about {megabytes(needed)} needed); the checkpoints are intact "
                f"({kept}). Free some space (or lower config.keep_checkpoints, or move the workdir) and rerun "
                "the same command to resume")
        return needed

    def check(self, step: int, state: Any) -> None:
        """After each chunk: stop now (one line) if a background save failed or the disk is nearly full."""
        self.check_for_errors()
        self._check_space(step, state)

    def save(self, step: int, state: Any, config_dict: dict) -> None:
        """Start writing `state` as step `step` (in the background); DiskFullError if it cannot fit.

        The previous save is waited for first (orbax's `save` would wait for it
        too), so its failure is reported here in one line and under its own step.
        """
        self.wait()
        needed = self._check_space(step, state)
        meta = {"config": config_dict, "shapes": shape_signature(state),
                "checksums": integrity.array_checksums(state), batches.DRAW_METADATA_KEY: batches.TRAINING_DRAW}
        self._saving = (step, needed)
        self._metas.pop(step, None)
        self._sizes.pop(step, None)
        try:
            self._manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
        except Exception as error:  # a write that failed before orbax handed the rest to its threads
            raise self._failed(error) from None

    def latest_finished(self) -> int | None:
        """The latest checkpoint once every save in flight has finished (or failed: DiskFullError)."""
        self.wait()
        return self.latest_step()

    def _record_files(self) -> None:
        """Write the file list into each finished step folder that has none yet (process 0)."""
        if self._read_only or not parallel.is_main_process():
            return
        in_flight = self._saving[0] if self._saving and self._manager.is_saving_in_progress() else None
        for step in self.all_steps():
            folder = os.path.join(self.directory, str(step))
            if step != in_flight and os.path.isdir(folder) and not os.path.exists(os.path.join(folder, FILES)):
                atomic_write(os.path.join(folder, FILES), json.dumps(integrity.file_checksums(folder, FILES)))

    def _no_space(self, step: int, needed: int) -> str:
        latest = [s for s in self.all_steps() if s != step]
        kept = f"latest: step {latest[-1]}" if latest else "there are none yet"
        return (f"saving the checkpoint at step {step} in {self.directory}: no space left on device "
                f"({megabytes(shutil.disk_usage(self.directory).free)} free, about {megabytes(needed)} "
                f"needed); the checkpoints before it are intact ({kept}). Free some space (or lower "
                "config.keep_checkpoints, or move the workdir) and rerun the same command to resume")

    def _failed(self, error: Exception) -> Exception:
        """The one-line error for a failed background save (the unfinished folder removed)."""
        step, needed = self._saving or (-1, 0)
        drop_the_failed_saves_coroutines()
        text = " ".join(str(e) for e in (error, error.__cause__, error.__context__) if e is not None)
        try:  # let the save's other writer threads end first, or they recreate what is removed below
            self._manager.wait_until_finished()
        except Exception:  # noqa: BLE001 — the same failure, already in hand
            pass
        if not self._read_only and parallel.is_main_process():
            self._remove_unfinished()
        self._manager.reload()
        if any(marker in text for marker in NO_SPACE):
            return DiskFullError(self._no_space(step, needed))
        if isinstance(error, OSError) or "os_error_code" in text:
            return WorkdirError(f"saving the checkpoint at step {step} in {self.directory} failed: "
                                f"{_first_line(error)}")
        return error

    def _remove_unfinished(self, settle: float = 0.3, patience: float = 3.0) -> None:
        """Remove the temporary folder of a failed save, until none reappears for `settle` seconds.

        An orbax writer thread that outlives the failure can still create its folder
        after the first removal (seen in about one failed save in eight).
        """
        deadline, quiet_since = time.monotonic() + patience, time.monotonic()
        while time.monotonic() < deadline:
            names = [n for n in os.listdir(self.directory) if UNFINISHED_CHECKPOINT in n]
            for name in names:
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
            if names:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= settle:
                return
            time.sleep(0.05)

    def check_for_errors(self) -> None:
        """Raise now (one line) if a background save has failed, rather than at the next save."""
        try:
            self._manager.check_for_errors()
        except Exception as error:  # orbax re-raises what its writer threads hit
            raise self._failed(error) from None

    def wait(self) -> None:
        try:
            self._manager.wait_until_finished()
            self._manager.check_for_errors()
        except Exception as error:
            raise self._failed(error) from None
        self._record_files()

    def close(self) -> None:
        self.wait()
        self._manager.close()

    # ---------------------------------------------------------- restore ----

    def metadata(self, step: int | None = None) -> dict:
        """The run metadata of `step` (latest by default); DamagedCheckpointError if unreadable."""
        step = self.resolve(step)
        try:
            return self._metadata(step)
        except DamagedCheckpointError as error:
            self._raise_if_rotated(step)
            raise DamagedCheckpointError(f"the checkpoint at step {step} in {self.directory} is "
                                         f"damaged: {error}") from None

    def _metadata(self, step: int) -> dict:
        """The metadata of a checkpoint whose files check out (read once: finished checkpoints never change)."""
        if step in self._metas:
            return self._metas[step]
        # The files first: orbax's own failure on a damaged file leaves tracebacks of its readers on stderr.
        problem = integrity.check_files(os.path.join(self.directory, str(step)), FILES)
        if problem:
            raise DamagedCheckpointError(problem)
        try:
            meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            meta["config"], meta["shapes"]  # noqa: B018 (both must be there)
        except Exception as error:  # a missing or unreadable meta item
            raise DamagedCheckpointError(f"its metadata cannot be read ({_first_line(error)})") from None
        self._metas[step] = meta
        return meta

    def _verified(self, step: int, abstract_state: Any, config_dict: dict,
                  accept: Callable[[int, dict], None] | None) -> Any:
        """The state at `step`, checked: shapes (IncompatibleCheckpointError), `accept(step, meta)`, then
        the arrays read and compared with their checksums (DamagedCheckpointError)."""
        meta = self._metadata(step)
        if meta["shapes"] != shape_signature(abstract_state):
            diff = _config_diff(meta["config"], config_dict)
            raise IncompatibleCheckpointError(
                f"the checkpoint at step {step} in {self.directory} was written by a config whose "
                f"model or optimiser has other shapes; config differences: {'; '.join(diff) or 'none'}. "
                "Use a fresh --workdir for this config, or rerun with the checkpoint's config.")
        if accept is not None:
            accept(step, meta)
        abstract = jax.tree_util.tree_map(_restore_target, abstract_state)
        try:
            state = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract)))["state"]
        except Exception as error:  # orbax/TensorStore: missing or truncated files
            raise DamagedCheckpointError(f"its arrays cannot be read ({_first_line(error)})") from None
        if "checksums" not in meta:
            absl_logging.warning("the checkpoint at step %d in %s predates checksums: not verified",
                                 step, self.directory)
            return state
        bad = integrity.mismatches(state, meta["checksums"])
        if bad:
            raise DamagedCheckpointError(f"{len(bad)} arrays differ from their checksums "
                                         f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})")
        return state

    def restore(self, abstract_state: Any, config_dict: dict, step: int | None = None) -> Any:
        """The state at `step` (latest by default), verified; refused if its shapes differ."""
        step = self.resolve(step)
        try:
            return self._verified(step, abstract_state, config_dict, None)
        except DamagedCheckpointError as error:
            self._raise_if_rotated(step)
            raise DamagedCheckpointError(f"the checkpoint at step {step} in {self.directory} is "
                                         f"damaged: {error}") from None

    def _raise_if_rotated(self, step: int) -> None:
        """A checkpoint gone while read was removed by the run training there (keep_checkpoints), not damaged."""
        if not os.path.isdir(os.path.join(self.directory, str(step))):
            raise FileNotFoundError(f"the checkpoint at step {step} in {self.directory} was removed while it was "
                                    "read (a run training there keeps only its latest keep_checkpoints); rerun "
                                    "to read the latest") from None

    def restore_newest_good(self, abstract_state: Any, config_dict: dict,
                            accept: Callable[[int, dict], None] | None = None) -> tuple[int, Any] | None:
        """(step, state) of the newest checkpoint that verifies, None if there is none at all.

        Each damaged one on the way is reported in one line and moved to
        workdir/damaged_checkpoints/ (kept, not deleted), so the run continues
        from the newest good state and later saves of those steps do not clash.
        `accept(step, meta)` may refuse a checkpoint's config (it raises).
        """
        damaged: dict[int, str] = {}
        for step in reversed(self.all_steps()):
            try:
                state = self._verified(step, abstract_state, config_dict, accept)
            except DamagedCheckpointError as error:
                damaged[step] = str(error)
                absl_logging.warning("the checkpoint at step %d in %s is damaged: %s; trying the one "
                                     "before it", step, self.directory, error)
                continue
            if not self._read_only:
                self.set_aside(sorted(damaged))
            return step, state
        if damaged:
            raise DamagedCheckpointError(
                f"no checkpoint in {self.directory} verifies ("
                + "; ".join(f"step {s}: {why}" for s, why in damaged.items())
                + "); move that folder away to train from scratch, or copy good checkpoints back into it")
        return None

    def set_aside(self, steps: list[int]) -> None:
        """Move the checkpoints of `steps` to workdir/damaged_checkpoints/ (process 0; all wait)."""
        if not steps:
            return
        if parallel.is_main_process():
            os.makedirs(os.path.join(self.workdir, DAMAGED_DIR), exist_ok=True)
            for step in steps:
                target = os.path.join(self.workdir, DAMAGED_DIR, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
                os.replace(os.path.join(self.directory, str(step)), target)
                absl_logging.warning("moved the damaged checkpoint of step %d to %s", step, target)
        parallel.sync_processes("aejax: damaged checkpoints set aside")
        for step in steps:
            self._metas.pop(step, None)
            self._sizes.pop(step, None)
        self._manager.reload()

    def verified_steps(self, abstract_of: Callable[[dict], Any]) -> list[int]:
        """The steps whose checkpoint verifies; `abstract_of(meta)` gives the state to restore into."""
        good = []
        for step in self.all_steps():
            try:
                meta = self._metadata(step)
                self._verified(step, abstract_of(meta), meta["config"], None)
            except Exception:  # any reason counts as not verified here
                continue
            good.append(step)
        return good

    def resolve(self, step: int | None) -> int:
        """`step` if there is a checkpoint of it, the latest if None; FileNotFoundError otherwise."""
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
