"""How JAX starts under aejax: the platform, the persistent compilation cache, the CPU tuning.

Applied once when aejax is imported (`aejax/__init__.py`), before any JAX backend starts:

* Platform. With no ``JAX_PLATFORMS`` set, JAX probes every backend it knows,
  and the TPU probe logs ``Unable to initialize backend 'tpu'`` on every machine
  without libtpu. When no accelerator plugin is installed (no libtpu, nothing in
  the ``jax_plugins`` namespace or entry points: what ``jax[cuda]``, ``jax[rocm]``
  and the like install) the only backend is the CPU, so aejax sets
  ``JAX_PLATFORMS=cpu`` and nothing is probed. With a plugin installed the
  variable is left alone (JAX picks the accelerator as usual) and only the TPU
  probe's log line is dropped when libtpu is absent.
* Compilation cache. Compiled programs are kept on disk and reused by later
  processes (`compilation_cache_dir`): a second run of a config starts without
  compiling. JAX's own cache key covers the program, the jaxlib version, the
  backend and its version, the compile options and ``XLA_FLAGS`` (which carries
  `cpu_tuning`'s flag; its threefry lowering changes the program itself). The
  directory adds what the key lacks: the host CPU (XLA:CPU compiles for the
  features of the machine it runs on, and a home directory may be shared by
  machines of several kinds). Entries are written under a temporary name and
  renamed (`AtomicFileCache`): sweep jobs starting the same program together never
  read half an entry, and a process killed while writing leaves none (JAX's own
  file cache writes in place; a truncated entry would warn and recompile on every
  run after). ``AEJAX_COMPILATION_CACHE=DIR`` chooses another root,
  ``AEJAX_COMPILATION_CACHE=off`` turns it off, and a cache the user set for JAX
  (``JAX_COMPILATION_CACHE_DIR``) is left as it is.
* `cpu_tuning`: two speed settings for XLA:CPU (same numbers).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import pkgutil
import platform
import tempfile
from pathlib import Path

from aejax.core import cpu_tuning

CACHE_ENV = "AEJAX_COMPILATION_CACHE"
DEFAULT_CACHE_ROOT = "~/.cache/aejax/compilation_cache"
_OFF = ("0", "off", "false", "no", "none")
_TPU_PROBE_MESSAGE = "Unable to initialize backend 'tpu'"


def accelerator_plugins() -> list[str]:
    """Installed JAX backends other than the CPU: libtpu, and the PJRT plugins JAX would load."""
    found = []
    if os.environ.get("TPU_LIBRARY_PATH") or importlib.util.find_spec("libtpu") is not None:
        found.append("libtpu")
    spec = importlib.util.find_spec("jax_plugins")
    if spec is not None and spec.submodule_search_locations:
        found += [name for _, name, _ in pkgutil.iter_modules(spec.submodule_search_locations)]
    found += [entry.value for entry in importlib.metadata.entry_points(group="jax_plugins")]
    return sorted(set(found))


class _DropTpuProbe(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_TPU_PROBE_MESSAGE)


def choose_platform() -> str | None:
    """Sets JAX_PLATFORMS=cpu when the user set none and no accelerator is installed; returns what it set."""
    if os.environ.get("JAX_PLATFORMS") or os.environ.get("JAX_PLATFORM_NAME"):
        return None
    plugins = accelerator_plugins()
    if "libtpu" not in plugins:  # nothing to find: the probe would only log its failure
        logging.getLogger("jax._src.xla_bridge").addFilter(_DropTpuProbe())
    if plugins:
        return None
    os.environ["JAX_PLATFORMS"] = "cpu"
    return "cpu"


def host_key() -> str:
    """What the compiled code depends on beyond JAX's own cache key: the architecture and CPU features."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            # The first processor's model and feature flags (all cores of a machine have the same).
            lines = f.read().split("\n\n")[0].splitlines()
        cpu = "\n".join(line for line in lines if line.split(":")[0].strip() in
                        ("vendor_id", "model name", "flags", "Features", "CPU implementer", "CPU part"))
    except OSError:
        cpu = platform.processor()
    digest = hashlib.sha256(f"{platform.machine()}\n{cpu}".encode()).hexdigest()[:12]
    return f"{platform.machine()}-{digest}"


def compilation_cache_dir() -> Path | None:
    """Where compiled programs are kept: ``$AEJAX_COMPILATION_CACHE`` or ~/.cache/aejax/..., per host CPU; None if off."""
    chosen = os.environ.get(CACHE_ENV, DEFAULT_CACHE_ROOT)
    if chosen.strip().lower() in _OFF or not chosen.strip():
        return None
    return Path(chosen).expanduser() / host_key()


class AtomicFileCache:
    """JAX's file cache layout (``<key>-cache`` files), each written whole: a temporary file, then a rename."""

    def __init__(self, path: Path):
        self._path = Path(path)
        self._path.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> bytes | None:
        try:
            return (self._path / f"{key}-cache").read_bytes()
        except FileNotFoundError:
            return None

    def put(self, key: str, value: bytes) -> None:
        target = self._path / f"{key}-cache"
        if target.exists():
            return
        handle = tempfile.NamedTemporaryFile(dir=self._path, prefix=f".{key}-", delete=False)
        try:
            with handle:
                handle.write(value)
            os.replace(handle.name, target)
        finally:
            if os.path.exists(handle.name):  # the write failed (a full disk): no entry
                os.unlink(handle.name)


def _install(directory: Path) -> bool:
    """Makes an `AtomicFileCache` JAX's persistent cache; False if JAX's internals moved (its own cache stays)."""
    try:
        from jax._src import compilation_cache
        with compilation_cache._cache_initialized_mutex:  # noqa: SLF001
            if compilation_cache._cache_initialized:  # noqa: SLF001
                return False
            compilation_cache._cache = AtomicFileCache(directory)  # noqa: SLF001
            compilation_cache._cache_initialized = True  # noqa: SLF001
        return True
    except (ImportError, AttributeError) as error:
        logging.getLogger(__name__).debug("JAX's own file cache: %s", error)
        return False


def enable_compilation_cache() -> Path | None:
    """Turns on JAX's persistent compilation cache in `compilation_cache_dir` (every program, however small)."""
    import jax
    if jax.config.jax_compilation_cache_dir:  # the user's own choice
        return Path(jax.config.jax_compilation_cache_dir)
    directory = compilation_cache_dir()
    if directory is None:
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a read-only or foreign home: run without the cache rather than fail
        logging.getLogger(__name__).warning(
            "no compilation cache: cannot write %s (%s); set %s=DIR to keep compiled programs elsewhere",
            directory, error.strerror or error, CACHE_ENV)
        return None
    jax.config.update("jax_compilation_cache_dir", os.fspath(directory))
    # A small run compiles dozens of programs of well under a second each: keep them all.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    _install(directory)
    return directory


def apply() -> None:
    choose_platform()
    cpu_tuning.apply()
    enable_compilation_cache()
