"""A sweep's child processes: each command's output in its log, and the sweep's signals passed on to them.

A sweep (`aejax.studies.sweep`) runs `python -m aejax.main` and `python -m
aejax.evaluate` as children. Stopping the sweep (SIGTERM from `kill` or a
scheduler, Ctrl-C) must stop them the way it stops a run: each training run
finishes its chunk, saves a checkpoint and exits, and the sweep exits after
them with one line. Left alone, the children of a killed sweep went on
training with nobody to evaluate them.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from typing import Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Children:
    """The sweep's running commands; every SIGTERM or SIGINT the sweep receives is passed on to each, once.

    The commands stay in the sweep's process group, so whatever reaches the whole
    group (a closed terminal, a scheduler's or `kill -9 -PGID`'s group kill) ends
    them with it. A signal that reached them directly as well (a terminal's
    Ctrl-C) thus arrives twice within milliseconds, which a training run takes as
    one request (`aejax.training.preemption.SAME_REQUEST_SECONDS`); a second one
    later stops it at once, without its checkpoint. A stopped sweep starts no
    further command. The signal handler only records the signal; a thread of its
    own passes it on, so a handler that interrupts `start` cannot deliver a
    signal twice or miss one.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._received: list[int] = []  # the stop signals, in order (appended by the handler only)
        self._sent: dict[subprocess.Popen, int] = {}  # running command → how many of them it was sent
        self._wake = threading.Event()

    @property
    def stopped_by(self) -> int:
        """The first stop signal received, 0 if none."""
        return self._received[0] if self._received else 0

    def start(self, command, **popen_kwargs) -> subprocess.Popen | None:
        """The started command, or None once the sweep was told to stop."""
        with self._lock:
            if self._received:
                return None
            child = subprocess.Popen(command, **popen_kwargs)
            self._sent[child] = 0
            self._deliver()  # a signal received while it started
            return child

    def finished(self, child: subprocess.Popen) -> None:
        with self._lock:
            self._sent.pop(child, None)

    def stop(self, signum: int, frame=None) -> None:
        """The signal handler: record the signal; the forwarding thread passes it on."""
        self._received.append(signum)
        self._wake.set()

    def _deliver(self) -> None:
        """Send each running command the signals it was not sent yet (with the lock held)."""
        received = list(self._received)
        for child, sent in self._sent.items():
            for signum in received[sent:]:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signum)
            self._sent[child] = len(received)

    def _forward(self, done: threading.Event) -> None:
        while not done.is_set():
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                self._deliver()

    @contextlib.contextmanager
    def forwarding_signals(self) -> Iterator["Children"]:
        """SIGTERM and SIGINT to this process go to the children while inside (from the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        done = threading.Event()
        forwarder = threading.Thread(target=self._forward, args=(done,), name="sweep-signals", daemon=True)
        forwarder.start()
        previous = {s: signal.signal(s, self.stop) for s in STOP_SIGNALS}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            done.set()
            self._wake.set()
            forwarder.join()


def run_logged(command: tuple[str, ...], log_path: str, env: dict, cpus: frozenset[int] | None = None,
               children: Children | None = None) -> int | None:
    """Run `command` with its output appended to `log_path`, pinned to `cpus` if given; its exit status,
    or None if `children` was told to stop before it started.

    Pinned from here, just after the start, not by a `preexec_fn`: that runs Python
    in the forked child of this process, which has JAX (multithreaded) imported, and
    JAX warns of deadlocks. The child is still importing when it is pinned, long
    before XLA starts the threads that inherit its affinity.
    """
    children = children or Children()
    with open(log_path, "a") as log:
        where = f"  [cpus {','.join(map(str, sorted(cpus)))}]" if cpus else ""
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')}  {' '.join(command)}{where}\n")
        log.flush()
        child = children.start(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        if child is None:
            return None
        try:
            if cpus:
                with contextlib.suppress(ProcessLookupError):  # it ended already
                    os.sched_setaffinity(child.pid, cpus)
            return child.wait()
        finally:
            children.finished(child)
