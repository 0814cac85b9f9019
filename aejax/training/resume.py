"""What a resumed run may change in its config, and the record of what it did change.

A run resumes from a checkpoint written with some config; a rerun whose config
differs would silently compute something else from that step on (another
learning rate, another β, a cosine schedule stretched to a new length). So:

* keys declared `resumable` (`aejax.core.options.Option`) only observe the run
  or say where it runs: log/eval/checkpoint intervals, `keep_checkpoints`,
  `num_figure_images`, `eval_batch_size`, `data_placement`, `num_devices`,
  `scan_steps`, `data_dir`, and `num_epochs` (a run's length is judged by the
  `num_train_steps` it resolves to). They change freely. The placement, device
  count and scan keys reach the same parameters to float tolerance, not
  bit-for-bit (tests/training/test_parallel.py, test_scan_steps.py);
* `num_train_steps` may change freely when the learning-rate schedule does not
  depend on the run's length (`aejax.core.optim.LENGTH_DEPENDENT_SCHEDULES`);
  under a cosine schedule a new length is a change like any other. A target
  below the checkpoint's step is an error (training cannot go back);
* any other difference is refused with one line listing the keys, unless the
  user names them: `--allow_config_change=learning_rate,beta`.

Every accepted difference is appended to `config_history.jsonl` with the step
it took effect at (`aejax.training.workdir.append_history`).
"""
from __future__ import annotations

import json
import time
from typing import Any, Iterable

from aejax.core.errors import ConfigChangeError, ConfigError
from aejax.core.optim import LENGTH_DEPENDENT_SCHEDULES
from aejax.data import batches
from aejax.training import config as run_config
from aejax.training import workdir as workdir_lib

Changes = dict[str, tuple[Any, Any]]


def differences(stored: dict, current: dict) -> Changes:
    """{key: (checkpoint's value, current value)} of every key whose value differs."""
    same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # noqa: E731
    keys = sorted(set(stored) | set(current))
    return {k: (stored.get(k), current.get(k)) for k in keys if not same(stored.get(k), current.get(k))}


def parse_allowed(text: str | Iterable[str] | None) -> frozenset[str]:
    """'a,b' (the flag's form) or an iterable of keys → a set of keys."""
    if not text:
        return frozenset()
    items = text.split(",") if isinstance(text, str) else list(text)
    return frozenset(item.strip().removeprefix("config.") for item in items if item.strip())


def _free_keys(stored: dict, current: dict) -> set[str]:
    """Keys whose change leaves the numbers alone: declared resumable, or read by no part of aejax."""
    options = {}
    for model in {stored.get("model"), current.get("model")} - {None}:
        try:
            options.update(run_config.options_of(model))
        except ValueError:  # a model this version no longer has: its own keys are unknown here
            continue
    declared = run_config.declared_keys()
    return {k for k in set(stored) | set(current)
            if (k in options and options[k].resumable) or k not in declared}


def check_resume(stored: dict, current: dict, step: int, allowed: frozenset[str] = frozenset(),
                 where: str = "the workdir") -> Changes:
    """The config differences of resuming `stored`'s checkpoint at `step` with `current`; one-line error if refused.

    Both configs are the prepared ones (derived fields set, `num_train_steps` resolved).
    """
    unknown = sorted(allowed - set(stored) - set(current))
    if unknown:
        raise ConfigError(f"--allow_config_change names {', '.join(map(repr, unknown))}, which "
                          f"{'is not a config key' if len(unknown) == 1 else 'are not config keys'}")
    target = current.get("num_train_steps")
    if isinstance(target, int) and target < step:
        raise ConfigError(f"config.num_train_steps={target} is below step {step}, where the checkpoint in "
                          f"{where} already is; a run cannot go back: set num_train_steps to at least "
                          f"{step}, or use the run as it is (aejax.load, python -m aejax.evaluate)")
    changes = differences(stored, current)
    free = _free_keys(stored, current)
    schedules = {stored.get("lr_schedule"), current.get("lr_schedule")}
    if not schedules & LENGTH_DEPENDENT_SCHEDULES:
        free.add("num_train_steps")
    refused = [k for k in changes if k not in free and k not in allowed]
    if refused:
        listed = "; ".join(f"{k}: checkpoint {changes[k][0]!r} vs now {changes[k][1]!r}" for k in refused)
        why = (" (the lr_schedule depends on the run's length)"
               if "num_train_steps" in refused and schedules & LENGTH_DEPENDENT_SCHEDULES else "")
        raise ConfigChangeError(
            f"the checkpoint at step {step} in {where} was written with another config, and resuming "
            f"would change what the run computes: {listed}{why}. To continue with the new values, rerun "
            f"with --allow_config_change={','.join(refused)} (recorded in {workdir_lib.HISTORY_FILE}); "
            "to keep the old ones, rerun with the checkpoint's config; or use another --workdir")
    return changes


def draw_changes(meta: dict, current: dict) -> Changes:
    """{"binarization_draw": (the checkpoint's, this version's)} when a dynamically binarised run resumes under
    another per-step draw: the same distribution, other bits, so its steps from here on are not those of an
    uninterrupted run of either version. Recorded and logged, not refused (nothing in the config changed)."""
    stored = meta.get(batches.DRAW_METADATA_KEY, batches.EARLIER_DRAW)
    if current.get("binarize") != "dynamic" or stored == batches.TRAINING_DRAW:
        return {}
    return {batches.DRAW_METADATA_KEY: (stored, batches.TRAINING_DRAW)}


def history_record(step: int, changes: Changes, allowed: frozenset[str]) -> dict[str, Any]:
    """What config_history.jsonl records of an accepted resume."""
    return {"step": step, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "changes": {k: {"from": old, "to": new} for k, (old, new) in changes.items()},
            "allowed": sorted(set(changes) & allowed)}
