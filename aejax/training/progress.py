"""Progress display with speed and ETA: a bar on a terminal, log lines otherwise."""
from __future__ import annotations

import sys
import time

from absl import logging

from aejax.core.timing import format_seconds


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
        head = (f"{self.description}: " if self.description else "") + \
            f"{self.unit} {step}/{self.total} ({100 * step / max(self.total, 1):.0f}%)"
        if steps_per_sec > 0:  # not before a timed stretch: no NaN speed, no "ETA ?"
            eta = (self.total - step) / steps_per_sec
            head += (f"  {steps_per_sec:.1f} {self.unit}/s  {steps_per_sec * self.examples_per_step:.0f} "
                     f"examples/s  ETA {format_seconds(eta)}")
        logging.info("%s  %s", head, postfix)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

