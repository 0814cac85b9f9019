"""Where a command's time goes: the run's breakdown line, and progress lines of long steps."""
import logging
import re
import time

import jax
import jax.numpy as jnp

from aejax.core import timing


def test_a_long_stage_logs_its_start_a_heartbeat_and_its_end(caplog):
    with caplog.at_level(logging.INFO, logger="absl"):
        with timing.stage("UMAP of 10 codes", heartbeat=0.05) as elapsed:
            time.sleep(0.18)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "UMAP of 10 codes ..." and lines[-1].startswith("UMAP of 10 codes done in 0.")
    assert 2 <= sum("UMAP of 10 codes: still running, 0:00" == line for line in lines) <= 4
    assert 0.18 <= elapsed.seconds < 1.0


def test_the_breakdown_sums_laps_by_phase_and_counts_what_jax_compiled():
    clock = timing.Breakdown()
    time.sleep(0.05)
    clock.lap("data")
    jax.jit(lambda x: jnp.sin(x) * 3.25)(jnp.arange(7.0)).block_until_ready()  # a program no test compiled
    clock.lap("first chunk")
    time.sleep(0.02)
    clock.lap("data")
    line = clock.summary()
    assert list(clock.seconds) == ["data", "first chunk"] and clock.seconds["data"] >= 0.07
    match = re.fullmatch(r"start-up [\d.]+s, data ([\d.]+)s, first chunk ([\d.]+)s; total ([\d.]+)s, of which "
                         r"compiling ([\d.]+)s \((\d+) programs, (\d+) loaded from the compilation cache\)", line)
    assert match, line
    assert int(match.group(5)) >= 1 and clock.compile_seconds > 0
    clock.close()  # closed twice: harmless; after closing, compiles are not counted
    programs = clock.programs
    jax.jit(lambda x: jnp.cos(x) * 1.75)(jnp.arange(5.0)).block_until_ready()
    assert clock.programs == programs
    assert timing.format_seconds(3725) == "1:02:05" and timing.format_seconds(float("nan")) == "?"
