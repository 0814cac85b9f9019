"""The bench's whole-process comparison with PyTorch (`process`) and the PyTorch mirror of the conv VAE."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from aejax import objectives
from aejax.studies.bench import process

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIME_LINE = ("time: start-up 1.2s, data 0.0s, init 0.5s, first chunk 0.4s, train 6.3s, eval 0.3s, figures 0.2s, "
             "checkpoint 0.1s; total 9.1s, of which compiling 1.5s (10 programs, 10 loaded from the compilation cache)")


def test_training_share_is_the_first_chunk_and_the_rest_of_training_against_the_total():
    assert process.training_share(TIME_LINE) == pytest.approx((6.7, 9.1))
    assert process.training_share("(no time: line in the log)") is None


def test_the_report_prints_minima_their_ratio_and_the_share_outside_training():
    result = {"seconds": {"aejax": [(10.0, 15.0), (9.5, 14.0)], "torch": [(15.0, 26.0), (14.25, 25.0)]},
              "negative_elbo": {"aejax": [245.5, 245.5], "torch": [245.51, 245.51]}, "breakdown": TIME_LINE,
              "epochs": 5, "commands": {"aejax": "python -m aejax.main ...", "torch": "python torch_vae.py ..."}}
    text = "\n".join(process.report(result))
    assert "aejax is 1.50x PyTorch's speed by wall time (target >= 2x: not met); CPU 1.79x" in text, text
    # Overhead 0.3 + 0.2 + 0.1 = 0.6 s of 9.1 s; the rest is 9.1 − 6.7 (training) − 0.6 = 1.8 s.
    assert ("outside it 2.4s: eval + figures + checkpoint 0.6s = 7% (target <= 10%: met), "
            "the rest (start-up, data, init) 1.8s") in text, text
    assert "-ELBO 245.50, 245.50" in text, text
    assert "would take" not in text  # no matmul section, no ceiling


def test_the_ceiling_puts_training_at_the_matmul_bound_and_keeps_the_rest_of_the_run():
    """5 epochs of 60,000 at batch 128 = 2,340 steps at 2 ms = 4.68 s, plus the 2.4 s outside training."""
    result = {"seconds": {"aejax": [(9.1, 14.0)], "torch": [(14.16, 25.0)]},
              "negative_elbo": {"aejax": [245.5], "torch": [245.5]}, "breakdown": TIME_LINE, "epochs": 5,
              "train_examples": 60_000, "commands": {"aejax": "aejax", "torch": "torch"}}
    assert process.at_matmul_bound(result, {"seconds_per_step": 2e-3}) == pytest.approx(2.4 + 4.68)
    text = "\n".join(process.report(result, {"seconds_per_step": 2e-3}))
    assert "the run would take 7.1s: 2.00x PyTorch's" in text, text


@pytest.mark.parametrize("side", [28, 8])
def test_the_pytorch_conv_vae_has_the_aejax_conv_vaes_layers(side):
    """Same parameter count and the same shape of every weight (up to NCHW/HWIO layout): a like-for-like timing."""
    pytest.importorskip("torch", reason="the bench's PyTorch baseline (pip install '.[bench]')")
    from aejax.studies.bench import torch_vae
    from experiments import conv_vae
    config = conv_vae.get_config()
    variant = objectives.get("vae")
    model = variant.build_model(config, (side, side, 1))
    params = model.init(jax.random.PRNGKey(0), *variant.init_inputs(config, jnp.zeros((2, side, side, 1)),
                                                                   jax.random.PRNGKey(1)))
    torch_model = torch_vae.ConvVAE(side * side, config.hidden_dims[0], config.latent_dim)
    ours = sorted(sorted(x.shape) for x in jax.tree_util.tree_leaves(params))
    theirs = sorted(sorted(p.shape) for p in torch_model.parameters())
    assert ours == theirs


@pytest.mark.slow
def test_the_pytorch_script_runs_as_a_whole_process_without_jax(tmp_path):
    """The baseline's process pays for torch only: run as a file, it imports neither aejax nor jax."""
    pytest.importorskip("torch", reason="the bench's PyTorch baseline (pip install '.[bench]')")
    import numpy as np
    rng = np.random.default_rng(0)
    train, test = tmp_path / "train.npy", tmp_path / "test.npy"
    np.save(train, rng.integers(0, 256, (256, 8, 8, 1), dtype=np.uint8))
    np.save(test, rng.integers(0, 256, (64, 8, 8, 1), dtype=np.uint8))
    code = ("import runpy, sys; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__'); "
            "print(json.dumps(sorted(m for m in ('jax', 'aejax') if m in sys.modules)))")
    result = subprocess.run(
        [sys.executable, "-c", "import json; " + code, process.TORCH_SCRIPT, str(train), str(test),
         str(tmp_path / "out"), "--epochs=1", "--batch_size=32", "--hidden=16", "--latent=2"],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert json.loads(lines[-1]) == [], lines
    assert json.loads(lines[-2])["test_negative_elbo"] > 0 and (tmp_path / "out" / "model.pt").is_file()


@pytest.mark.slow
def test_the_process_section_times_both_whole_processes_on_a_tiny_dataset():
    result = subprocess.run(
        [sys.executable, "-m", "aejax.bench", "--sections=process", "--dataset=digits", "--epochs=1", "--repeats=1"],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=REPO))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    try:
        import torch  # noqa: F401
    except ImportError:
        assert "Whole process against PyTorch: skipped: torch is not installed" in out, out
        return
    assert "Whole process, the canonical VAE, 1 epochs: 1 rounds alternating" in out, out
    assert "PyTorch's speed by wall time" in out and "training (first chunk + train)" in out, out
