"""Errors a user can fix: every command ends on one of these with one line, not a traceback.

Anything else is a bug and keeps its traceback (aejax.core.cli.one_line_errors).
"""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment; the message names it and the fix."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work; the message says which and what is allowed."""


class DatasetNotFoundError(UserError, FileNotFoundError):
    """The raw files a dataset is prepared from are not on this machine."""


class IncompatibleCheckpointError(UserError, ValueError):
    """The checkpoint in a workdir was written by a config of another shape."""


class NonFiniteLossError(UserError, FloatingPointError):
    """A loss or metric became NaN/Inf; training stopped before saving it."""
