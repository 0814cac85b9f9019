"""The CPU tuning applied on `import aejax` can only ever change CPU programs, never a GPU's or TPU's."""
from jax._src.interpreters import mlir

from aejax.core import cpu_tuning


def test_the_xla_flag_it_sets_is_a_cpu_compiler_flag(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    cpu_tuning.set_xla_flags()
    added = set(cpu_tuning.os.environ["XLA_FLAGS"].split()) - {"--xla_dump_to=/tmp/x"}
    assert added and all(flag.startswith("--xla_cpu_") for flag in added)


def test_the_user_s_own_setting_of_that_flag_wins(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=all")
    cpu_tuning.set_xla_flags()
    assert cpu_tuning.os.environ["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type=all"


def test_the_threefry_lowering_is_registered_for_the_cpu_platform_only(monkeypatch):
    calls = []
    monkeypatch.setattr(mlir, "register_lowering", lambda *args, **kwargs: calls.append(kwargs))
    cpu_tuning.unroll_threefry_on_cpu()
    assert calls == [{"platform": "cpu"}]
