"""The CPU tuning applied on `import aejax` can only ever change CPU programs, never a GPU's or TPU's."""
import numpy as np
from jax._src.interpreters import mlir

from aejax.core import cpu_tuning


def test_the_xla_flag_it_sets_is_a_cpu_compiler_flag(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    cpu_tuning.set_xla_flags()
    added = set(cpu_tuning.os.environ["XLA_FLAGS"].split()) - {"--xla_dump_to=/tmp/x"}
    assert added and all(flag.startswith("--xla_cpu_") for flag in added)


def test_the_user_s_own_setting_of_a_flag_wins_and_the_others_are_still_set(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=all")
    cpu_tuning.set_xla_flags()
    flags = cpu_tuning.os.environ["XLA_FLAGS"].split()
    assert flags[-1] == "--xla_cpu_experimental_ynn_fusion_type=all"
    assert sorted(flags[:-1]) == ["--xla_cpu_copy_insertion_use_region_analysis=true"]


def test_the_threefry_lowering_is_registered_for_the_cpu_platform_only(monkeypatch):
    calls = []
    monkeypatch.setattr(mlir, "register_lowering", lambda *args, **kwargs: calls.append(kwargs))
    cpu_tuning.unroll_threefry_on_cpu()
    assert calls == [{"platform": "cpu"}]


def _threefry2x32_numpy(key1, key2, count1, count2):
    """Threefry-2x32, 20 rounds, written out from Salmon et al. (2011) in numpy's uint32 arithmetic."""
    key1, key2, x0, x1 = np.broadcast_arrays(*(np.asarray(a, np.uint32) for a in (key1, key2, count1, count2)))
    ks = [key1, key2, key1 ^ key2 ^ np.uint32(0x1BD11BDA)]
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for group in range(5):
        for r in ((13, 15, 26, 6), (17, 29, 16, 24))[group % 2]:
            x0 = x0 + x1
            x1 = x0 ^ ((x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r)))
        x0 = x0 + ks[(group + 1) % 3]
        x1 = x1 + ks[(group + 2) % 3] + np.uint32(group + 1)
    return x0, x1


def test_the_cpu_lowering_of_threefry_gives_the_published_and_numpy_bits():
    import jax
    from jax._src.random import threefry2x32

    import aejax  # noqa: F401  (registers the lowering)
    assert mlir._platform_specific_lowerings["cpu"][threefry2x32.threefry2x32_p].rule is \
        cpu_tuning._threefry2x32_unrolled
    hash_ = jax.jit(threefry2x32.threefry_2x32)
    # Known-answer tests of the Random123 library (Threefry-2x32-20).
    for key, count, expected in [((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
                                 ((0xFFFFFFFF,) * 2, (0xFFFFFFFF,) * 2, (0x1CB996FC, 0xBB002BE7)),
                                 ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0))]:
        assert [int(v) for v in hash_(np.uint32(key), np.uint32(count))] == list(expected)
    # Odd shapes, keys broadcast against the counts (as jax.random calls it), zero-sized draws.
    rng = np.random.default_rng(0)
    key1, key2 = rng.integers(0, 2**32, 2, dtype=np.uint32)
    count1, count2 = rng.integers(0, 2**32, (2, 7, 3), dtype=np.uint32)
    got = jax.jit(lambda *a: threefry2x32.threefry2x32_p.bind(*a))(key1, key2, count1, count2)
    for word, want in zip(got, _threefry2x32_numpy(key1, key2, count1, count2)):
        np.testing.assert_array_equal(np.asarray(word), want)
    empty = jax.jit(lambda *a: threefry2x32.threefry2x32_p.bind(*a))(key1, key2, count1[:0], count2[:0])
    assert [w.shape for w in empty] == [(0, 3), (0, 3)]
