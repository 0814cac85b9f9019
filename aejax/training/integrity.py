"""Checksums of a checkpoint: of every array of the state, and of every file orbax wrote.

Orbax finds a checkpoint with missing files, but not always one whose bytes
changed on disk (4 KB overwritten in place can restore without complaint, and
the run goes on from wrong numbers). Two CRC-32s find that:

* of every array's bytes, stored in the checkpoint's metadata when it is saved
  (from the state being saved) and compared with the restored state (from the
  arrays in memory: nothing is read twice). This is the end-to-end check: the
  state restored is the state saved;
* of every file (and its size), listed once the checkpoint is finished
  (`aejax.training.checkpoint.FILES`) and compared before orbax reads them, so a
  damaged file is named in one line before orbax's readers fail on it. This
  reads the files once more (from the page cache, as orbax reads them next).
"""
from __future__ import annotations

import json
import os
import zlib
from typing import Any

import jax
import numpy as np


def _host_array(leaf: Any) -> np.ndarray | None:
    """This process's copy of a leaf: a replicated or fully addressable array, else None."""
    if isinstance(leaf, jax.Array):
        if leaf.is_fully_replicated:
            leaf = leaf.addressable_data(0)
        elif not leaf.is_fully_addressable:
            return None  # sharded over processes: no process holds it whole
    return np.ascontiguousarray(jax.device_get(leaf))


def checksum(array: np.ndarray) -> str:
    """'crc32:<hex>' of an array's dtype, shape and bytes (little-endian, C order)."""
    array = np.ascontiguousarray(array, array.dtype.newbyteorder("<"))
    header = f"{array.dtype.str}{array.shape}".encode()
    return f"crc32:{zlib.crc32(memoryview(array).cast('B'), zlib.crc32(header)):08x}"


def file_checksum(path: str, block: int = 1 << 20) -> tuple[int, str]:
    """(size, 'crc32:<hex>') of a file's bytes."""
    crc, size = 0, 0
    with open(path, "rb") as f:
        while chunk := f.read(block):
            crc, size = zlib.crc32(chunk, crc), size + len(chunk)
    return size, f"crc32:{crc:08x}"


def file_checksums(folder: str, exclude: str) -> dict[str, tuple[int, str]]:
    """{relative path: (size, checksum)} of every file under `folder` but `exclude`."""
    files = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            if os.path.relpath(path, folder) != exclude:
                files[os.path.relpath(path, folder)] = file_checksum(path)
    return files


def check_files(folder: str, listing: str) -> str | None:
    """What is wrong with the files of `folder` against its list `listing` (None: all there, unchanged).

    A folder without a readable list (written before lists existed, or its
    writer killed before it was) passes: its arrays are still checked.
    """
    try:
        with open(os.path.join(folder, listing)) as f:
            files = json.load(f)
    except (OSError, ValueError):
        return None
    missing = sorted(name for name, (size, _) in files.items()
                     if not os.path.isfile(os.path.join(folder, name))
                     or os.path.getsize(os.path.join(folder, name)) != size)
    changed = sorted(name for name, recorded in files.items()
                     if name not in missing and list(file_checksum(os.path.join(folder, name))) != list(recorded))
    for bad, what in ((missing, "missing or truncated"), (changed, "changed (checksums differ)")):
        if bad:
            return (f"{len(bad)} of its {len(files)} files are {what} "
                    f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})")
    return None


def array_checksums(tree: Any) -> dict[str, str]:
    """{path: checksum} of every array of `tree` this process holds whole."""
    checksums = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        array = _host_array(leaf)
        if array is not None:
            checksums[jax.tree_util.keystr(path)] = checksum(array)
    return checksums


def mismatches(tree: Any, expected: dict[str, str]) -> list[str]:
    """Paths of `tree` whose array differs from its recorded checksum (or is missing from `tree`)."""
    paths = {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)}
    actual = array_checksums(tree)
    return sorted(p for p, value in expected.items()
                  if p not in paths or (p in actual and actual[p] != value))
