"""Errors a user can fix: every command ends on one of these with one line, not a traceback.

Anything else is a bug and keeps its traceback (aejax.core.cli.one_line_errors).
"""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment; the message names it and the fix."""

    exit_status = 2  # what a command exits with after printing the one line


class ConfigError(UserError, ValueError):
    """A config value that cannot work; the message says which and what is allowed."""


class DatasetNotFoundError(UserError, FileNotFoundError):
    """The raw files a dataset is prepared from are not on this machine."""


class DatasetCorruptError(UserError, ValueError):
    """A raw dataset file is truncated or malformed; the message names it and how to get it again."""


class IncompatibleCheckpointError(UserError, ValueError):
    """The checkpoint in a workdir was written by a config of another shape."""


class ConfigChangeError(IncompatibleCheckpointError):
    """Resuming with a config that computes something else than the checkpoint's, without saying so."""


class DamagedCheckpointError(UserError, ValueError):
    """A checkpoint fails its integrity check (missing or truncated files, changed bytes)."""


class NonFiniteLossError(UserError, FloatingPointError):
    """A loss or metric became NaN/Inf; training stopped before saving it."""


class WorkdirError(UserError, OSError):
    """The workdir cannot be used: not writable, a file, or full."""


class WorkdirLockedError(WorkdirError):
    """Another process is training in the workdir."""


class DiskFullError(WorkdirError):
    """A checkpoint (or another output) did not fit on the workdir's filesystem."""


class Interrupted(UserError):
    """SIGTERM or SIGINT stopped the run after saving a checkpoint; rerunning resumes it.

    Commands exit with 128 + the signal's number (143 for SIGTERM, 130 for
    SIGINT), as a shell reports a process the signal stopped, so schedulers and
    sweeps see the run as not finished.
    """

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.signal_number = signal_number
        self.exit_status = 128 + signal_number


class NoPriorError(UserError, ValueError):
    """Sampling a model whose prior is fitted after training (fit_prior, aejax.prior) before it was fitted."""
