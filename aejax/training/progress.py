"""Progress display with speed and ETA: a bar on a terminal, log lines otherwise."""
from __future__ import annotations

import sys
import time

from absl import logging


class Progress:
    """Tracks steps done since the run (re)started; prints steps/s, examples/s, ETA.

    `unit` names what a step is ("step" for training, "batch" for an
    evaluation pass) and `description` prefixes each line.
    """

    def __init__(self, total_steps: int, initial_step: int, examples_per_step: int,
                 log_every_seconds: float = 10.0, unit: str = "step", description: str = ""):
        self.total = total_steps
        self.examples_per_step = examples_per_step
        self.unit, self.description = unit, description
        self._start_step = initial_step
        self._start_time = None
        self._last_log = 0.0
        self._log_every_seconds = log_every_seconds
        self._bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm
            self._bar = tqdm(total=total_steps, initial=initial_step, unit=unit,
                             desc=description or None, dynamic_ncols=True, smoothing=0.1)

    def start(self, step: int) -> None:
        """Start timing after compilation, so speed and ETA describe steady state."""
        self._start_step, self._start_time = step, time.perf_counter()

    def rate(self, step: int) -> float:
        if self._start_time is None or step <= self._start_step:
            return float("nan")
        return (step - self._start_step) / (time.perf_counter() - self._start_time)

    def update(self, step: int, postfix: str = "") -> None:
        steps_per_sec = self.rate(step)
        if self._bar is not None:
            self._bar.n = step
            self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.refresh()
            return
        now = time.perf_counter()
        if now - self._last_log < self._log_every_seconds and step < self.total:
            return
        self._last_log = now
        eta = (self.total - step) / steps_per_sec if steps_per_sec > 0 else float("nan")
        logging.info("%s%s %d/%d (%.0f%%)  %.1f %s/s  %.0f examples/s  ETA %s  %s",
                     f"{self.description}: " if self.description else "", self.unit, step,
                     self.total, 100 * step / max(self.total, 1), steps_per_sec, self.unit,
                     steps_per_sec * self.examples_per_step, format_seconds(eta), postfix)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def format_seconds(seconds: float) -> str:
    if seconds != seconds:  # NaN: not measured yet
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
