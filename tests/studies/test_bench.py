"""The bench: its FLOP count against a hand count, and one tiny end-to-end run of the command."""
import importlib.util
import os
import re
import subprocess
import sys

import pytest

from aejax.studies.bench import harness as bench

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_step_matmuls_of_the_canonical_vae_match_a_hand_count():
    kernels = [(784, 400), (400, 20), (400, 20), (20, 400), (400, 784)]
    matmuls = bench.step_matmuls(kernels, batch_size=128, data_dim=784)
    # Forward and weight gradient for all five layers; input gradient for all but the data layer.
    assert len(matmuls) == 5 + 5 + 4
    weights = 784 * 400 + 2 * 400 * 20 + 20 * 400 + 400 * 784
    assert bench.flops(matmuls) == 2 * 128 * (3 * weights - 784 * 400) == 419_840_000


@pytest.mark.slow
def test_bench_command_prints_the_table_on_a_tiny_dataset():
    result = subprocess.run(
        [sys.executable, "-m", "aejax.bench", "--dataset=digits", "--epochs=2", "--steps=3",
         "--examples=128", "--repeats=1", "--batch_sizes=32", "--models=ae,no_such_model",
         "--sections=vae,loop,matmul,profile,models,batch"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for expected in ("backend cpu", "examples/s", "fraction of matmul bound", "timed in turn", "scan / per-step loop",
                     "no_such_model", "skipped: not registered", "batch 32", "peak host memory"):
        assert expected in out, out
    has_torch = importlib.util.find_spec("torch") is not None  # with it, the same matmuls through torch's kernels
    assert ("XLA float32" in out and "torch bfloat16" in out) == has_torch, out


@pytest.mark.slow
def test_bench_startup_section_times_whole_processes_side_by_side():
    result = subprocess.run(
        [sys.executable, "-m", "aejax.bench", "--sections=startup", "--repeats=1"],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=REPO))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "Start-up: whole processes, 1 rounds alternating" in out, out
    assert 'python -c "import jax; jax.numpy.ones(1)"' in out
    warm, cold = (float(re.search(rf"\({kind}.*?\)\s+[\d.]+s wall\s+[\d.]+s CPU\s+([\d.]+)× JAX", out).group(1))
                  for kind in ("compilation cache filled", "empty compilation cache"))
    assert warm > 0 and cold > 0, out  # figures only: whether the cache is used is tested in tests/core
    assert "warm run's breakdown: time: start-up" in out and "loaded from the compilation cache" in out
    assert "backend cpu" in out and "torch" not in out


@pytest.mark.slow
def test_population_conv_dtype_likelihood_and_kernels_sections_print_their_figures():
    result = subprocess.run(
        [sys.executable, "-m", "aejax.bench", "--dataset=digits", "--epochs=1", "--steps=3", "--repeats=1",
         "--sections=conv,dtype,population,likelihood,kernels", "--members=1,3", "--sweep_epochs=0",
         "--likelihood_samples=20"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    for expected in ("one run (the trainer's chunk)", "population of 1 side by side", "population of 3 vmapped", "of the bound",
                     "Conv VAE", "per-step calls", "conv_general_dilated_patches + matmul", "bf16 / float32", "dSprites MLP",
                     "K = 20 over 359 test images", "estimator / matmul floor",
                     "Kernels of the trainer's step", "MLP_0/dense_0/dot_general"):
        assert expected in result.stdout, result.stdout


def test_the_likelihood_floor_counts_the_canonical_decoders_matmuls():
    """Burda et al.'s cost floor: K·N rows through the decoder's 20→400 and 400→784 layers, nothing of the encoder."""
    import jax
    from aejax.data import splits
    from aejax.studies.bench.harness import BenchOptions, base_config, make_setup
    from aejax.studies.bench.likelihood import decoder_matmuls
    config = base_config(BenchOptions(), "vae")
    setup = make_setup(config, splits.load(config, "test"))
    params = jax.eval_shape(setup.init).params
    assert decoder_matmuls(params, 10_000) == [(10_000, 20, 400), (10_000, 400, 784)]


@pytest.mark.parametrize("side,kernel_side,stride", [(28, 4, 2), (7, 3, 1), (9, 4, 2), (14, 3, 1)])
def test_the_patch_formulations_of_a_conv_equal_laxs_convolution(side, kernel_side, stride):
    """The conv section's alternatives compute the same 'SAME' conv as the model's lax conv (odd sides included)."""
    import jax
    import numpy as np
    from aejax.studies.bench import conv
    key_x, key_k = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(key_x, (3, side, side, 5))
    kernel = jax.random.normal(key_k, (kernel_side, kernel_side, 5, 7))
    expected = np.asarray(conv._conv_lax(x, kernel, stride))
    for formulation in (conv._conv_patches, conv._conv_slices):
        np.testing.assert_allclose(np.asarray(formulation(x, kernel, stride)), expected, rtol=1e-4, atol=1e-4)


def test_the_kernels_section_names_each_kernel_by_its_shape_and_module():
    from aejax.studies.bench.kernels import _instructions
    hlo = ('  %ynn_fusion.2 = f32[128,400]{1,0} fusion(%a, %b), kind=kCustom, calls=%c, metadata={op_name='
           '"jit(train_chunk)/while/body/closed_call/transpose(jvp(VariationalAutoencoder))/'
           'VariationalAutoencoder.decode/decoder/MLP_0/dense_1/dot_general" stack_frame_id=65}\n'
           '  ROOT %add_subtract_fusion = f32[128,784]{1,0} fusion(%d), kind=kLoop, metadata={op_name='
           '"jit(train_chunk)/while/body/closed_call/jvp()/sub"}\n'
           '  %copy.52 = f32[400,784]{1,0} copy(%e)\n')
    assert _instructions(hlo) == {
        "ynn_fusion.2": ("f32[128,400]", "backward decoder/MLP_0/dense_1/dot_general"),
        "add_subtract_fusion": ("f32[128,784]", "sub"),
        "copy.52": ("f32[400,784]", "")}


def test_interleaved_timing_takes_one_call_of_each_variant_per_round():
    """Each variant is warmed once, then timed once per round in turn: a drift of the machine's speed hits
    every variant alike (timed one after another, the later variant would get the slower window)."""
    from aejax.studies.bench.harness import interleaved_median_seconds
    calls, now = [], [0.0]

    def variant(name, cost):
        def run():
            calls.append(name)
            now[0] += cost * (1 + len(calls) / 100)  # the machine slows down as the calls go on
        return run

    medians = interleaved_median_seconds({"a": variant("a", 1.0), "b": variant("b", 1.0)}, 3, lambda: now[0])
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert abs(medians["a"] / medians["b"] - 1) < 0.02  # equal costs measure equal despite the drift
