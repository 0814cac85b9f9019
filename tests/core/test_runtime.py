"""How JAX starts under aejax: the platform without the TPU probe, and a compilation cache keyed safely."""
import json
import os
import subprocess
import sys
import textwrap

from aejax.core import runtime

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Shows every log line JAX writes while it starts, then says what aejax chose.
_REPORT = textwrap.dedent("""
    import logging, os, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    import aejax, jax
    jax.numpy.ones(1).block_until_ready()
    print(os.environ.get("JAX_PLATFORMS"), jax.default_backend())
""")


def _python(script, tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "JAX_PLATFORM_NAME")}
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**base, "PYTHONPATH": REPO, "AEJAX_COMPILATION_CACHE": str(tmp_path / "cache"), **env})


def test_without_an_accelerator_plugin_jax_runs_on_the_cpu_without_probing_for_a_tpu(tmp_path):
    assert runtime.accelerator_plugins() == []  # this machine: jax and jaxlib only
    result = _python(_REPORT, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["cpu", "cpu"]
    assert "Unable to initialize backend" not in result.stderr and "libtpu" not in result.stderr


def test_an_installed_plugin_leaves_the_choice_to_jax_and_only_the_tpu_probe_line_goes(tmp_path):
    # A PJRT plugin as jax[cuda] installs one (a module in the jax_plugins namespace), registering nothing.
    plugin = tmp_path / "site" / "jax_plugins" / "aejax_test_plugin"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text("LOADED = []\ndef initialize():\n    LOADED.append(1)\n")
    result = _python(_REPORT + "import jax_plugins.aejax_test_plugin as p; print(p.LOADED)", tmp_path,
                     PYTHONPATH=f"{REPO}:{tmp_path / 'site'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["None", "cpu", "[1]"]  # JAX probed, loaded the plugin, fell back to the CPU
    assert "Unable to initialize backend 'tpu'" not in result.stderr


def test_the_users_platform_choice_is_kept(monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cuda")
    assert runtime.choose_platform() is None and os.environ["JAX_PLATFORMS"] == "cuda"
    monkeypatch.delenv("JAX_PLATFORMS")
    monkeypatch.setattr(runtime, "accelerator_plugins", lambda: ["jax_plugins.xla_cuda12"])
    assert runtime.choose_platform() is None and "JAX_PLATFORMS" not in os.environ
    monkeypatch.setattr(runtime, "accelerator_plugins", lambda: [])
    assert runtime.choose_platform() == "cpu" and os.environ["JAX_PLATFORMS"] == "cpu"


def test_the_compilation_cache_lives_in_the_aejax_cache_per_host_cpu(monkeypatch, tmp_path):
    monkeypatch.delenv(runtime.CACHE_ENV, raising=False)
    default = runtime.compilation_cache_dir()
    assert default.parent == runtime.Path("~/.cache/aejax/compilation_cache").expanduser()
    assert default.name == runtime.host_key() and default.name.startswith(runtime.platform.machine())
    monkeypatch.setenv(runtime.CACHE_ENV, str(tmp_path))
    assert runtime.compilation_cache_dir() == tmp_path / runtime.host_key()
    for off in ("off", "0", "none", ""):
        monkeypatch.setenv(runtime.CACHE_ENV, off)
        assert runtime.compilation_cache_dir() is None


def test_a_cache_directory_that_cannot_be_written_turns_the_cache_off_with_a_warning(tmp_path):
    """A read-only (or another user's) home must not stop a run: it runs without the cache and says so."""
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    script = ("import logging, aejax, jax\n"
              "assert not jax.config.jax_compilation_cache_dir, jax.config.jax_compilation_cache_dir\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=dict(os.environ, **{runtime.CACHE_ENV: str(blocked / "cache")}))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"no compilation cache: cannot write {blocked / 'cache'}" in result.stderr
    assert "Traceback" not in result.stderr


_COMPILE = textwrap.dedent("""
    import json, sys
    if sys.argv[1] == "aejax":
        import aejax  # its compilation cache and CPU tuning
    import jax, jax.monitoring
    if sys.argv[1] == "plain":  # the same cache directory, without aejax's CPU tuning
        jax.config.update("jax_compilation_cache_dir", sys.argv[2])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    key, hits = jax.random.PRNGKey(0).block_until_ready(), []
    jax.monitoring.register_event_listener(  # from here on: the one program below
        lambda event, **kw: hits.append(1) if event == "/jax/compilation_cache/cache_hits" else None)
    f = jax.jit(lambda key: jax.random.bernoulli(key, 0.5, (64, 64)).sum())
    print(json.dumps({"value": int(f(key)), "hits": len(hits)}))
""")


def test_a_second_process_loads_what_the_first_compiled_and_other_cpu_tuning_never_shares_it(tmp_path):
    root = tmp_path / "cache"

    def run(mode, **env):
        env = {**os.environ, "PYTHONPATH": REPO, "AEJAX_COMPILATION_CACHE": str(root), **env}
        result = subprocess.run([sys.executable, "-c", _COMPILE, mode, str(root / runtime.host_key())],
                                cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.splitlines()[-1])

    first = run("aejax")
    assert first["hits"] == 0 and any((root / runtime.host_key()).iterdir())
    second = run("aejax")
    assert second["hits"] == 1 and second["value"] == first["value"]  # loaded, same result
    # XLA flags are part of the key: the user's own ynn setting compiles afresh.
    assert run("aejax", XLA_FLAGS="--xla_cpu_experimental_ynn_fusion_type=+dot")["hits"] == 0
    # Without aejax's threefry lowering the program differs: compiled afresh (same bits).
    plain = run("plain")
    assert plain["hits"] == 0 and plain["value"] == first["value"]


def test_cache_entries_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    cache = runtime.AtomicFileCache(tmp_path)
    cache.put("k", b"first")
    cache.put("k", b"second")  # an entry is never rewritten (same key: same program)
    assert cache.get("k") == b"first" and cache.get("missing") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k-cache"]

    class FullDisk:
        def __init__(self, *args, **kwargs):
            self.name = str(tmp_path / ".j-partial")
            open(self.name, "wb").write(b"half")

        def write(self, data):
            raise OSError(28, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(runtime.tempfile, "NamedTemporaryFile", FullDisk)
    try:
        cache.put("j", b"whole")
    except OSError:
        pass  # JAX turns a failed write into a warning; what matters is what is left on disk
    assert cache.get("j") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k-cache"]


def test_aejax_installs_its_cache_and_jax_reads_and_writes_through_it(tmp_path):
    script = ("import aejax, jax\n"
              "from jax._src import compilation_cache\n"
              "print(type(compilation_cache._cache).__name__)\n"
              "jax.jit(lambda x: x * 2)(jax.numpy.ones(3)).block_until_ready()\n")
    result = _python(script, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["AtomicFileCache"]
    entries = list((tmp_path / "cache" / runtime.host_key()).iterdir())
    assert entries and all(p.name.endswith("-cache") and not p.name.startswith(".") for p in entries)

