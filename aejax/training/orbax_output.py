"""What orbax prints: its warnings kept, its chatter and a failed save's leftover noise dropped.

A run's terminal shows aejax's own lines; a failed checkpoint save is reported
by `aejax.training.checkpoint.Checkpointer` in one line, so what orbax's and
TensorStore's background threads print about the same failure is dropped here.
"""
from __future__ import annotations

import logging
import sys
import traceback
import warnings
from typing import Callable

# How a full disk shows in the errors of orbax, TensorStore and the OS.
NO_SPACE = ("No space left on device", "os_error_code='28'", "[Errno 28]")


class _DropOrbaxInfo(logging.Filter):
    """Orbax logs every save and load at INFO; keep its warnings, drop the chatter.

    A failed write (a full disk) is reported by the Checkpointer in one line, so
    the tracebacks orbax's background threads log for it are dropped too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage() + (str(record.exc_info[1]) if record.exc_info else "")
        if any(marker in message for marker in NO_SPACE):
            return False
        if "orbax" not in record.pathname:
            return True
        return record.levelno >= logging.WARNING and "read_only" not in message and "read only" not in message


def _is_orphaned_loop_callback(unraisable) -> bool:
    """A write finishing after its save's event loop closed: `call_soon_threadsafe` on a closed loop.

    When one of a save's TensorStore writes fails (a full disk), orbax's event
    loop ends at once; the save's other writes finish later on TensorStore's own
    threads, whose completion callbacks then find the loop closed. Python reports
    each as an "ignored" exception with a traceback on stderr (0–30 lines a failed
    save, by chance). Nothing is lost: the failure itself is reported in one line.
    """
    if not (isinstance(unraisable.exc_value, RuntimeError)
            and str(unraisable.exc_value) == "Event loop is closed"):
        return False
    frames = traceback.extract_tb(unraisable.exc_traceback)
    return any(frame.name == "call_soon_threadsafe" for frame in frames)


def _drop_orphaned_loop_callbacks(previous: Callable) -> Callable:
    def hook(unraisable) -> None:
        if not _is_orphaned_loop_callback(unraisable):
            previous(unraisable)
    hook.drops_orphaned_loop_callbacks = True
    return hook


def quiet_orbax() -> None:
    """Orbax's INFO lines, and the noise of a failed save's leftover writes, kept off the terminal."""
    for name in ("absl", "asyncio"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropOrbaxInfo) for f in logger.filters):
            logger.addFilter(_DropOrbaxInfo())
    if not getattr(sys.unraisablehook, "drops_orphaned_loop_callbacks", False):
        sys.unraisablehook = _drop_orphaned_loop_callbacks(sys.unraisablehook)


def drop_the_failed_saves_coroutines() -> None:
    """After a failed save: its writes that never ran are dropped silently.

    The save's pending coroutines (TensorStore writes of the other arrays) are
    garbage-collected unawaited, and Python warns of each on stderr, often at
    exit, after the one-line report of the failure.
    """
    warnings.filterwarnings("ignore", message=r"coroutine '.*' was never awaited", category=RuntimeWarning)
