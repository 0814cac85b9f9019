"""How a module declares the config keys it reads: `OPTIONS = {name: Option(default, check, doc)}`.

A model, objective, data or training module keeps its table next to the code
that reads the keys, so adding a variant touches one file. `aejax.training.config`
collects the tables that apply to a run (the shared ones and the chosen
variant's), fills in missing keys with their defaults and checks every value
before anything is built or compiled. A check returns None for an allowed value,
else the complaint that follows `config.<key>=<value>` in a one-line ConfigError.
A key that only observes a run or says where it runs (how often it logs, how many
devices) is declared `resumable`: a resumed run may change it freely, while any
other change must be allowed explicitly (`aejax.training.resume`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping

from aejax.core.errors import ConfigError

Check = Callable[[Any], "str | None"]


@dataclasses.dataclass(frozen=True)
class Option:
    """One config key: its default, what values it allows, and what it means.

    `resumable`: changing it when resuming leaves the computed numbers alone
    (the same steps, batches and keys), so a resume may change it unasked.
    """
    default: Any
    check: Check
    doc: str = ""
    resumable: bool = False


def rule(allowed: str, ok: Callable[[Any], bool]) -> Check:
    """A check that accepts `ok(value)` and otherwise says to use `allowed`."""
    return lambda value: None if ok(value) else f"is not allowed: use {allowed}"


def one_of(choices: Iterable | Callable[[], Iterable]) -> Check:
    """The value must be one of `choices` (a table's keys, or a function giving them when checked)."""
    def check(value):
        options = tuple(choices() if callable(choices) else choices)
        return None if value in options else "is not allowed: use one of " + ", ".join(map(str, options))
    return check


positive = rule("a positive number", lambda v: isinstance(v, (int, float)) and v > 0)
non_negative = rule("a number ≥ 0", lambda v: isinstance(v, (int, float)) and v >= 0)
probability = rule("a number in [0, 1]", lambda v: isinstance(v, (int, float)) and 0 <= v <= 1)
count = rule("an integer ≥ 0", lambda v: isinstance(v, int) and v >= 0)
boolean = rule("True or False", lambda v: isinstance(v, bool))
steps = rule("a positive integer, or -1", lambda v: isinstance(v, int) and (v > 0 or v == -1))
text = rule("a string", lambda v: isinstance(v, str))
number = rule("a number", lambda v: isinstance(v, (int, float)))
integer = rule("an integer", lambda v: isinstance(v, int))
sizes = rule("a tuple of positive integers, e.g. (400,) or ()",
             lambda v: isinstance(v, (tuple, list)) and all(isinstance(s, int) and s > 0 for s in v))


def positive_integer(value) -> str | None:
    """A positive number that is also an integer (sizes, counts of steps)."""
    return positive(value) or (None if isinstance(value, int) else "must be an integer")


def merge(*tables: Mapping[str, Option]) -> dict[str, Option]:
    """One table from several; a key may appear twice only as the same declaration."""
    merged: dict[str, Option] = {}
    for table in tables:
        for name, option in table.items():
            if name in merged and merged[name] is not option:
                raise ValueError(f"config key {name!r} is declared twice, differently; declare it once "
                                 "and import that declaration where it is shared")
            merged[name] = option
    return merged


def check_value(name: str, option: Option, value: Any) -> None:
    """ConfigError naming the key, the value and what is allowed, unless `value` passes."""
    complaint = option.check(value)
    if complaint:
        raise ConfigError(f"config.{name}={value!r} {complaint}")
