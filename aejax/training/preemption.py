"""Stopping cleanly on SIGTERM (what SLURM and cloud schedulers send) and SIGINT (Ctrl-C).

While a `StopSignals` is active, either signal only sets a flag: the training
loop finishes the chunk it is in, saves a checkpoint, closes its writers and
raises `aejax.core.errors.Interrupted`, which the command prints as one line
and exits with 128 + the signal's number (143 for SIGTERM, 130 for SIGINT). A
second signal stops the process at once, without saving (the last checkpoint
stays whole: orbax only ever renames complete ones into place), unless it
comes within `SAME_REQUEST_SECONDS` of the first: that is one request delivered
twice (a terminal's Ctrl-C reaches a sweep and its runs, and the sweep passes
it on as well; `aejax.studies.sweep_children`), not a person pressing again.

In a multi-process job a signal may reach one process, or reach them at
different chunks; `requested()` takes the largest signal number over the
processes (one small collective per chunk), so every process stops after the
same step and they save that checkpoint together.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

from absl import logging

from aejax.core import parallel

SIGNALS = (signal.SIGTERM, signal.SIGINT)
SAME_REQUEST_SECONDS = 0.1


class StopSignals:
    """Context manager: SIGTERM/SIGINT set a flag instead of killing the process (main thread only)."""

    def __init__(self):
        self.signal_number = 0
        self._first_at = 0.0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():  # Python allows handlers only there
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _handle(self, number: int, frame) -> None:
        del frame
        name = signal.Signals(number).name
        if self.signal_number and time.monotonic() - self._first_at < SAME_REQUEST_SECONDS:
            logging.info("%s again at once: the same request, delivered twice", name)
            return
        if self.signal_number:
            sys.stderr.write(f"second {name}: stopping at once, without saving; the last checkpoint is "
                             "intact\n")
            sys.stderr.flush()
            os._exit(128 + number)
        self.signal_number, self._first_at = number, time.monotonic()
        logging.warning("%s received: finishing this chunk of steps, then saving a checkpoint and "
                        "stopping (send it again to stop at once, without saving)", name)

    def requested(self) -> int:
        """The signal to stop for (0: none), the same in every process."""
        return parallel.max_over_processes(self.signal_number)


def name_of(number: int) -> str:
    return signal.Signals(number).name
