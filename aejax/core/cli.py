"""Command-line plumbing shared by the `python -m aejax.*` commands.

Errors a user can fix (bad override, unknown model, missing data, a
checkpoint from another config) end the command with one line on stderr and
exit status 2 (an interrupted run: 128 + the signal's number); anything else
is a bug and keeps its traceback.
"""
from __future__ import annotations

import contextlib
import importlib.util
import re
import signal
import sys

from absl import flags

from aejax.core.errors import Interrupted, UserError


def _config_keys(argv: list[str]) -> list[str]:
    """Keys of the config file named by --config (best effort, for the message)."""
    for arg in argv:
        match = re.match(r"--config=([^:]+)(?::(.*))?$", arg)
        if match:
            try:
                spec = importlib.util.spec_from_file_location("_aejax_config", match.group(1))
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                config = module.get_config(match.group(2)) if match.group(2) else module.get_config()
                return sorted(config.keys())
            except Exception:  # The message below is still useful without the keys.
                return []
    return []


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
    """Turn the errors a user can fix (`UserError`, a missing file) into `error: ...` and exit status 2.

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
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C)", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
