"""Command-line plumbing shared by the `python -m aejax.*` commands.

Errors a user can fix (bad override, unknown model, missing data, a
checkpoint from another config) end the command with one line on stderr and
exit status 2 (an interrupted run: 128 + the signal's number); anything else
is a bug and keeps its traceback.
"""
from __future__ import annotations

import contextlib
import difflib
import errno
import hashlib
import importlib.util
import os
import re
import shutil
import signal
import sys

from absl import flags

from aejax.core.errors import Interrupted, UserError


def _config_file(argv: list[str]) -> tuple[str, str] | None:
    """(path, argument) of --config=path[:argument], or None."""
    for arg in argv:
        match = re.match(r"--config=([^:]+)(?::(.*))?$", arg)
        if match:
            return match.group(1), match.group(2) or ""
    return None


def _overrides(argv: list[str]) -> dict[str, str]:
    """{key path: value} of the --config.<key>=<value> overrides, in command-line order."""
    found = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--config."):
            key, equals, value = arg[len("--config."):].partition("=")
            found[key] = value if equals else (argv[i + 1] if i + 1 < len(argv) else "")
    return found


def _load_config(argv: list[str]):
    """The config file named by --config, loaded (best effort, for the messages: None if it fails)."""
    named = _config_file(argv)
    if named is None:
        return None
    try:
        spec = importlib.util.spec_from_file_location("_aejax_config", named[0])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.get_config(named[1]) if named[1] else module.get_config()
    except Exception:  # The messages are still useful without the config.
        return None


def _config_keys(argv: list[str]) -> list[str]:
    config = _load_config(argv)
    return [] if config is None else sorted(config.keys())


def unknown_key_message(argv: list[str], config=None) -> str | None:
    """``unknown config key 'bata'; did you mean 'beta'?`` for the first override of a key the config lacks."""
    config = _load_config(argv) if config is None else config
    if config is None:
        return None
    for path in _overrides(argv):
        node, seen = config, []
        for part in path.split("."):
            keys = list(node.keys()) if hasattr(node, "keys") else []
            if part not in keys:
                name = ".".join([*seen, part])
                close = difflib.get_close_matches(part, keys, n=1)
                if close:
                    return f"unknown config key {name!r}; did you mean {'.'.join([*seen, close[0]])!r}?"
                return f"unknown config key {name!r}; the keys are: {', '.join(sorted(keys))}"
            node, seen = node[part], [*seen, part]
    return None


def default_workdir(argv: list[str], root: str = "runs") -> str:
    """Where a run without --workdir goes: ``runs/<config stem>[-<argument>][__<key>=<value>...]``.

    ``--config=experiments/beta_vae.py:smoke --config.beta=8`` → ``runs/beta_vae-smoke__beta=8``:
    the same command resumes the same run. Overrides are sorted by key (their order does
    not matter); characters unsafe in a path become '-'; a name over 120 characters
    keeps its start and a hash of the whole.
    """
    path, argument = _config_file(argv) or ("run", "")
    name = os.path.splitext(os.path.basename(path))[0] + (f"-{argument}" if argument else "")
    name += "".join(f"__{key}={value}" for key, value in sorted(_overrides(argv).items()))
    name = re.sub(r"[^\w.,=+()-]", "-", name)
    if len(name) > 120:
        name = f"{name[:100]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return os.path.join(root, name)


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, with override mistakes reported in one line."""
    path = next((a.split("=", 1)[1].split(":")[0] for a in argv if a.startswith("--config=")), "?")
    try:
        remaining = flags.FLAGS(argv)
        if "config" in flags.FLAGS and argv and any(a.startswith("--config") for a in argv):
            flags.FLAGS["config"].value.keys()  # config files load lazily; fail here, not mid-run
        return remaining
    except SyntaxError as error:
        where = error.filename or path  # the config file, or a module it imports
        print(f"error: {where}, line {error.lineno}: {error.msg} (a Python syntax error in the config)",
              file=sys.stderr)
        sys.exit(2)
    except OSError as error:
        reason = str(error).strip().splitlines()[-1].strip()
        print(f"error: cannot load the config file {path}: {reason}", file=sys.stderr)
        sys.exit(2)
    except (AttributeError, KeyError, TypeError, ValueError, flags.Error) as error:
        unknown = unknown_key_message(argv) if any(a.startswith("--config.") for a in argv) else None
        if unknown:
            print(f"error: {unknown}", file=sys.stderr)
            sys.exit(2)
        overrides = [a.split("=")[0] for a in argv if a.startswith("--config.")]
        text = str(error).strip("\"'")
        key = text.strip("'\"")
        if isinstance(error, (AttributeError, KeyError)) and any(o.endswith(f".{key}") for o in overrides):
            keys = _config_keys(argv)
            hint = f"; keys are: {', '.join(keys)}" if keys else ""
            print(f"error: --config.{key}: the config has no key {key!r}{hint}", file=sys.stderr)
        else:
            print(f"error: bad command-line flags: {text.splitlines()[0] if text else error!r}", file=sys.stderr)
        sys.exit(2)


@contextlib.contextmanager
def one_line_errors():
    """Turn the errors a user can fix (`UserError`, a missing file, a full disk) into `error: ...` and exit status 2.

    An interrupted run prints its own line and exits 128 + the signal's number
    (`aejax.core.errors.Interrupted`); a Ctrl-C the command did not handle itself
    exits 130 with one line too.
    """
    try:
        yield
    except Interrupted as error:
        print(str(error), file=sys.stderr)
        sys.exit(error.exit_status)
    except (UserError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(getattr(error, "exit_status", 2))
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        print(f"error: {no_space_line(error)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C)", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)


def no_space_line(error: OSError) -> str:
    """A full disk met outside the writes that check for it: the file, the free space and the fix."""
    where = os.path.dirname(os.path.abspath(error.filename)) if error.filename else os.getcwd()
    while not os.path.isdir(where):
        where = os.path.dirname(where)
    free = shutil.disk_usage(where).free / 2**20
    return (f"writing {error.filename or 'a file'} failed: no space left on device ({free:.1f} MiB free in "
            f"{where}); free some space and rerun the same command")


def exit_without_teardown(status: int = 0) -> None:
    """Ends a command whose work is done and written, skipping the interpreter's teardown.

    Tearing down a process that ran JAX on the CPU takes ~0.5 s (XLA's client and
    compiled programs freed, then every module): a sixth of a smoke run, measured in
    `python -m aejax.bench --sections=startup`. What a normal exit would still do is
    done first: other threads are joined (as the interpreter would), the exit
    handlers run (JAX's, orbax's, pending `weakref.finalize`s), logs and the standard
    streams are flushed; then the process ends with `status`. Single-process runs only:
    a multi-process job's processes leave through `jax.distributed`'s shutdown, which
    a joined thread can wait on (tests/training/test_parallel.py runs both).
    """
    import atexit
    import threading

    from absl import logging
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # noqa: SLF001 (CPython's own exit sequence, run ahead of os._exit)
    logging.flush()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status)
