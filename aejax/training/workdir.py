"""A run's workdir: one job trains in it at a time, and what it writes is whole.

* `claim(workdir)`: the workdir made and checked writable, and locked for the
  whole run: an exclusive `fcntl.flock` on `workdir/run.lock`, which names the
  holder (pid, host, start time, command). A second run gets one line naming the
  holder instead of mixing its steps into the first one's. A killed holder's
  lock is released by the kernel; the next run takes it over and says whose it
  was. In a multi-process job process 0 holds the lock for the job, and every
  process learns whether it got it (one collective), so they stop together.
* `check_writable`: a file can be created in the directory (read-only mounts,
  permissions, a path that is a file), checked before any work is done.
* whole-file writes (config.json, eval.json) are `aejax.core.files.atomic_write`'s.
* `remove_unfinished_checkpoints`: orbax writes a checkpoint into
  `<step>.orbax-checkpoint-tmp*` and renames it when complete; what a killed or
  failed save left behind is removed when the next run starts.
* `append_history`: one JSON line per accepted config change (config_history.jsonl).
* `disk_errors_in_one_line`: a full disk while writing metrics or figures ends
  the run with one line, as a full disk while saving a checkpoint does
  (`aejax.training.checkpoint`).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from typing import Any, Callable, Iterator

from absl import logging

from aejax.core import parallel
from aejax.core.errors import DiskFullError, UserError, WorkdirError, WorkdirLockedError

# Free space a command needs beyond its checkpoints, for its small outputs (metrics, figures, reports): a
# training run keeps it free beside the next checkpoint; evaluate, inspect and n2d check it before computing.
OUTPUT_ROOM = 2**20
LOCK_FILE = "run.lock"
HISTORY_FILE = "config_history.jsonl"
UNFINISHED_CHECKPOINT = ".orbax-checkpoint-tmp"


def check_writable(directory: str, *, create: bool = True, what: str = "the workdir", room: int = 0) -> None:
    """WorkdirError in one line unless files can be created in `directory` (made if `create`), and
    DiskFullError unless it has `room` bytes free."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise WorkdirError(f"{what} {directory} is a file, not a directory; pass a directory (it is "
                           "created if missing), or move the file away")
    try:
        if create:
            os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as error:
        raise WorkdirError(f"{what} {directory} is not writable ({error.strerror or error}); choose a "
                           "directory on a writable filesystem that you may write to") from None
    if shutil.disk_usage(directory).free < room:
        raise DiskFullError(f"{what} {directory} is on a full disk ({_free_megabytes(directory)} MiB free, about "
                            f"{room / 2**20:.1f} MiB needed for what this command writes); free some space and "
                            "rerun the same command")


def append_history(workdir: str, record: dict[str, Any]) -> None:
    """One more line of config_history.jsonl, flushed to disk."""
    with open(os.path.join(workdir, HISTORY_FILE), "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def remove_unfinished_checkpoints(checkpoint_dir: str) -> list[str]:
    """Delete the temporary folders of saves that never completed; their names, for the log."""
    if not os.path.isdir(checkpoint_dir):
        return []
    removed = sorted(name for name in os.listdir(checkpoint_dir) if UNFINISHED_CHECKPOINT in name)
    for name in removed:
        shutil.rmtree(os.path.join(checkpoint_dir, name), ignore_errors=True)
        logging.warning("removed %s: an unfinished checkpoint left by an earlier run",
                        os.path.join(checkpoint_dir, name))
    return removed


@contextlib.contextmanager
def disk_errors_in_one_line(workdir: str, latest_checkpoint: Callable[[], int | None]) -> Iterator[None]:
    """ENOSPC inside → DiskFullError naming the file, the free space and the latest checkpoint.

    `latest_checkpoint()` waits for saves in flight; if one of them failed too,
    its own DiskFullError (which names the checkpoint) is the one raised.
    """
    try:
        yield
    except OSError as error:
        if error.errno != errno.ENOSPC or isinstance(error, UserError):
            raise
        latest = latest_checkpoint()
        kept = f"latest: step {latest}" if latest is not None else "there are none yet"
        raise DiskFullError(
            f"writing {error.filename or 'into ' + workdir} failed: no space left on device "
            f"({_free_megabytes(workdir)} MiB free); the checkpoints are intact ({kept}). Free some "
            "space and rerun the same command to resume") from None


def _free_megabytes(directory: str) -> str:
    return f"{shutil.disk_usage(directory).free / 2**20:.1f}"


# ------------------------------------------------------------------ lock ----

def _holder(workdir: str) -> dict[str, Any]:
    try:
        with open(os.path.join(workdir, LOCK_FILE)) as f:
            return json.loads(f.read() or "{}")
    except (OSError, ValueError):
        return {}


def describe_holder(workdir: str) -> str:
    holder = _holder(workdir)
    if not holder:
        return "another process"
    return (f"pid {holder.get('pid')} on host {holder.get('host')} (running since "
            f"{holder.get('started')}: {holder.get('command', '?')})")


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _in_use(workdir: str) -> WorkdirLockedError:
    return WorkdirLockedError(
        f"{workdir} is in use by {describe_holder(workdir)}; wait for that run to finish, stop it "
        f"(kill {_holder(workdir).get('pid', '<pid>')}: it saves a checkpoint and exits), or use another --workdir")


def held_elsewhere(workdir: str) -> bool:
    """Whether some process holds the workdir's lock (tried without taking it for long)."""
    if not os.path.exists(os.path.join(workdir, LOCK_FILE)):
        return False
    try:
        with open(os.path.join(workdir, LOCK_FILE), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(f, fcntl.LOCK_UN)
    except OSError:
        return True
    return False


class WorkdirLock:
    """An exclusive flock on workdir/run.lock, with the holder written into the file."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.path = os.path.join(workdir, LOCK_FILE)
        self._file = None

    def acquire(self) -> "WorkdirLock":
        previous = _holder(self.workdir)
        self._file = open(self.path, "a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            self._file.close()
            self._file = None
            if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise _in_use(self.workdir) from None
            logging.warning("cannot lock %s (%s): this filesystem has no file locks, so a second run in "
                            "the same workdir would not be stopped", self.path, error.strerror)
            return self
        if previous.get("pid") and previous.get("pid") != os.getpid():
            stale = previous.get("host") == socket.gethostname() and not _pid_running(int(previous["pid"]))
            logging.warning("took over the lock of %s%s", describe_holder(self.workdir),
                            ", which is no longer running" if stale else ", which released it")
        try:  # a full disk fails here: the lock is let go with the error
            self._file.seek(0)
            self._file.truncate()
            self._file.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                         "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                         "command": " ".join([os.path.basename(sys.executable),
                                                              *sys.orig_argv[1:]])}))
            self._file.flush()
        except OSError:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):  # its unwritten bytes fail again in close
                self._file.close()
            self._file = None
            raise
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()  # a free lock names nobody
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


@contextlib.contextmanager
def claim(workdir: str) -> Iterator[None]:
    """The workdir checked writable and locked for this job while inside; one line if it cannot be.

    Every process checks that it can write (all of them write checkpoints);
    process 0 takes the lock. Whether all succeeded is agreed with one
    collective, so a refused multi-process job stops in every process.
    """
    problem: UserError | None = None
    lock = None
    try:
        check_writable(workdir)
        if parallel.is_main_process():
            lock = WorkdirLock(workdir).acquire()
    except UserError as error:
        problem = error
    except OSError as error:  # a full disk: naming the holder in run.lock is the run's first write
        if error.errno != errno.ENOSPC:
            raise
        problem = DiskFullError(f"starting the run in {workdir}: no space left on device "
                                f"({_free_megabytes(workdir)} MiB free); nothing in it was changed. Free some "
                                "space and rerun the same command")
    if parallel.max_over_processes(int(problem is not None)):
        if lock is not None:
            lock.release()
        parallel.sync_processes("aejax: workdir refused")  # process 0 has released its lock
        if problem is None:  # another process of this job failed: say why if it is the lock
            problem = _in_use(workdir) if held_elsewhere(workdir) else WorkdirError(
                f"{workdir}: another process of this job cannot use it; see the log of process 0")
        raise problem
    try:
        yield
    finally:
        if lock is not None:
            lock.release()
