"""Where a command's time goes, and a log line for every step long enough to wonder about.

* `Breakdown`: wall seconds of the phases of a run (start-up, data, init, first
  chunk, ...) as laps of one clock, and the time JAX spent compiling (from JAX's
  own monitoring events: tracing, lowering, and compiling or loading from the
  persistent cache), summarised in one log line.
* `stage(name)`: logs ``name ...`` when a step starts, ``name: still running, 0:30``
  every `heartbeat` seconds while it runs, and ``name done in 12.3s``, so no step of
  evaluate or inspect is silent for long.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Iterator

from absl import logging

_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")
_BACKEND_COMPILE, _CACHE_HIT = _COMPILE_EVENTS[2], "/jax/compilation_cache/cache_hits"


def format_seconds(seconds: float) -> str:
    """m:ss or h:mm:ss; "?" for NaN (not measured yet)."""
    if seconds != seconds:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def process_age() -> float | None:
    """Seconds since this process started (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, after the command name
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class Breakdown:
    """Laps of one wall clock, summed by phase name, plus JAX's compile time while it was open.

    ``lap(name)`` adds the time since the previous lap (or since creation) to `name`.
    Created at the start of a command's work; ``summary()`` closes it.
    """

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.compile_seconds, self.programs, self.cache_hits = 0.0, 0, 0
        self.start_up = process_age()  # interpreter, imports, flags: what ran before this
        self._last = time.perf_counter()
        self._listening = True
        import jax.monitoring
        jax.monitoring.register_event_duration_secs_listener(self._on_duration)
        jax.monitoring.register_event_listener(self._on_event)

    def _on_duration(self, event: str, duration: float, **kwargs) -> None:
        if event in _COMPILE_EVENTS:
            self.compile_seconds += duration
            self.programs += event == _BACKEND_COMPILE

    def _on_event(self, event: str, **kwargs) -> None:
        self.cache_hits += event == _CACHE_HIT

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        seconds, self._last = now - self._last, now
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        return seconds

    def close(self) -> None:
        if self._listening:
            import jax.monitoring
            jax.monitoring.unregister_event_duration_listener(self._on_duration)
            jax.monitoring.unregister_event_listener(self._on_event)
            self._listening = False

    def summary(self) -> str:
        """``start-up 1.2s, data 0.1s, ...; total 3.0s, of which compiling 0.8s (25 programs, 25 from the cache)``."""
        self.close()
        phases = ({"start-up": self.start_up} if self.start_up is not None else {}) | self.seconds
        parts = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in phases.items())
        return (f"{parts}; total {sum(phases.values()):.1f}s, of which compiling {self.compile_seconds:.1f}s "
                f"({self.programs} programs, {self.cache_hits} loaded from the compilation cache)")


@dataclasses.dataclass
class Elapsed:
    seconds: float = 0.0


@contextlib.contextmanager
def stage(name: str, heartbeat: float = 15.0, log=logging.info) -> Iterator[Elapsed]:
    """Logs the start and end (with the time taken) of a step, and a line every `heartbeat` seconds between."""
    log("%s ...", name)
    start, done, elapsed = time.perf_counter(), threading.Event(), Elapsed()

    def beat():
        while not done.wait(heartbeat):
            log("%s: still running, %s", name, format_seconds(time.perf_counter() - start))

    thread = threading.Thread(target=beat, name=f"heartbeat: {name}", daemon=True)
    thread.start()
    try:
        yield elapsed
    finally:
        done.set()
        thread.join()
        elapsed.seconds = time.perf_counter() - start
    log("%s done in %.1fs", name, elapsed.seconds)
