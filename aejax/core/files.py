"""Whole-file writes: a reader, or a rerun after a kill or a full disk, sees the old file or the new one.

Every result file aejax writes (config.json, eval.json, results, summaries,
pages, arrays) goes through `atomic_write`: a temporary file in the same folder,
flushed and synced, then renamed over the target.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile

import numpy as np


def atomic_write(path: str, text: str | bytes) -> None:
    """Replace `path` by `text` (str or bytes) whole: a reader sees the old file or the new one, never half."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(handle, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(error, OSError) and error.filename is None and error.errno is not None:
            raise OSError(error.errno, error.strerror, path) from None  # the file named in the error
        raise


def save_arrays(path: str, **arrays) -> None:
    """`np.savez_compressed`, replacing `path` whole (a killed process leaves the old file or the new one)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write(path, buffer.getvalue())
