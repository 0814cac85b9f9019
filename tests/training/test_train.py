"""End-to-end training on tiny configs: loss falls, resume is exact, bad input is refused."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import aejax
from aejax import objectives
from aejax.core.errors import ConfigError, IncompatibleCheckpointError, NonFiniteLossError
from aejax.data import batches, placement, splits
from aejax.training import checkpoint
from aejax.training.loop import train_and_evaluate
from aejax.training.state import abstract_train_state
from aejax.training.step import make_evaluate
from aejax.training.writers import read_metrics
from experiments import beta_vae, vae

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def smoke(**overrides):
    config = vae.get_config("smoke")
    for key, value in overrides.items():
        config[key] = value
    return config


def params_of(workdir):
    return aejax.load(workdir).params


def assert_same_tree(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("smoke"))
    final = train_and_evaluate(smoke(num_train_steps=40, eval_every_steps=20,
                                           checkpoint_every_steps=20), workdir)
    return workdir, final


def test_short_run_lowers_the_loss_and_writes_outputs(smoke_run):
    workdir, final = smoke_run
    records = read_metrics(workdir)
    train_losses = [r["train/loss"] for r in records if "train/loss" in r]
    assert train_losses[-1] < train_losses[0] - 1.0
    assert "train/examples_per_sec" in records[-1] or any("train/examples_per_sec" in r for r in records)
    evals = [r for r in records if "eval/elbo" in r]
    assert [r["step"] for r in evals] == [20, 40]
    assert final["elbo"] == pytest.approx(evals[-1]["eval/elbo"])
    # The reported ELBO is −(reconstruction + KL), whatever β is.
    assert final["elbo"] == pytest.approx(-(final["reconstruction"] + final["kl"]), rel=1e-5)
    assert len(evals[-1]["eval/kl_per_dim"]) == 4
    assert sum(evals[-1]["eval/kl_per_dim"]) == pytest.approx(evals[-1]["eval/kl"], rel=1e-4)
    for name in ("reconstructions_step0000040.png", "samples_step0000040.png"):
        assert os.path.getsize(os.path.join(workdir, "figures", name)) > 100
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(workdir, "tensorboard")))
    assert json.load(open(os.path.join(workdir, "config.json")))["num_train_steps"] == 40
    assert checkpoint.Checkpointer(workdir, read_only=True).all_steps() == [20, 40]


def test_load_round_trip(smoke_run):
    workdir, final = smoke_run
    model = aejax.load(workdir)
    assert model.step == 40 and model.config.model == "vae"
    x = np.random.default_rng(0).integers(0, 256, size=(5, 8, 8, 1), dtype=np.uint8)
    mean, logvar = model.encode(x)
    assert mean.shape == logvar.shape == (5, 4)
    # decode ∘ encoder mean == reconstruct; the output is a Bernoulli mean in (0, 1).
    np.testing.assert_allclose(model.decode(mean), model.reconstruct(x), rtol=1e-6)
    samples = model.sample(jax.random.PRNGKey(0), 7)
    assert samples.shape == (7, 8, 8, 1) and float(samples.min()) > 0 and float(samples.max()) < 1
    # The same params evaluate to the same test ELBO the run reported.
    evaluate = make_evaluate(model.variant.make_loss(model.model, model.config), model.config)
    split = splits.load(model.config, "test")
    state = abstract_train_state(model.config)
    ckpt = checkpoint.Checkpointer(workdir, read_only=True)
    restored = ckpt.restore(state, model.config.to_dict())
    again = evaluate(model.params, placement.put_on_device(split), restored.rng, restored.step)
    assert float(again["elbo"]) == pytest.approx(float(final["elbo"]), rel=1e-6)
    # An earlier step restores too.
    assert aejax.load(workdir, step=20).step == 20


def test_same_seed_same_numbers_other_seed_other_numbers(smoke_run, tmp_path):
    workdir, _ = smoke_run
    train_and_evaluate(smoke(num_train_steps=40, eval_every_steps=20, checkpoint_every_steps=20),
                             str(tmp_path / "again"))
    assert_same_tree(params_of(workdir), params_of(str(tmp_path / "again")))
    train_and_evaluate(smoke(num_train_steps=40, eval_every_steps=20, checkpoint_every_steps=20,
                                   seed=1), str(tmp_path / "seed1"))
    a, b = params_of(workdir), params_of(str(tmp_path / "seed1"))
    assert not np.allclose(jax.tree_util.tree_leaves(a)[0], jax.tree_util.tree_leaves(b)[0])


def test_resume_equals_uninterrupted(smoke_run, tmp_path):
    workdir, _ = smoke_run
    resumed = str(tmp_path / "resumed")
    # Stop after 20 steps (as if killed after the checkpoint), then run to 40.
    train_and_evaluate(smoke(num_train_steps=20, eval_every_steps=20, checkpoint_every_steps=20), resumed)
    train_and_evaluate(smoke(num_train_steps=40, eval_every_steps=20, checkpoint_every_steps=20), resumed)
    assert_same_tree(params_of(workdir), params_of(resumed))
    steps = [r["step"] for r in read_metrics(resumed)]
    assert steps == sorted(steps)


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted(tmp_path):
    """A real SIGKILL at an arbitrary moment; the resumed run ends bit-identical."""
    args = ["--config=experiments/vae.py:smoke", "--config.num_train_steps=400",
            "--config.log_every_steps=10", "--config.eval_every_steps=50",
            "--config.checkpoint_every_steps=10"]
    env = dict(os.environ, JAX_PLATFORMS="cpu")

    def run(workdir, wait=True):
        cmd = [sys.executable, "-m", "aejax.main", f"--workdir={workdir}", *args]
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) if not wait else \
            subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)

    reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")
    run(reference)
    process = run(killed, wait=False)
    deadline = time.time() + 120
    ckpt_dir = os.path.join(killed, "checkpoints")
    while time.time() < deadline:   # kill once a few checkpoints exist, mid-training
        if os.path.isdir(ckpt_dir) and len(os.listdir(ckpt_dir)) >= 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted_at = checkpoint.Checkpointer(killed, read_only=True).latest_step()
    assert interrupted_at is not None and interrupted_at < 400
    run(killed)
    assert_same_tree(params_of(reference), params_of(killed))


def test_checkpoint_from_another_config_is_refused(smoke_run, tmp_path):
    workdir = str(tmp_path / "other")
    train_and_evaluate(smoke(num_train_steps=10, eval_every_steps=10, checkpoint_every_steps=10), workdir)
    with pytest.raises(IncompatibleCheckpointError, match="latent_dim: checkpoint 4 vs now 3"):
        train_and_evaluate(smoke(num_train_steps=20, latent_dim=3), workdir)
    assert checkpoint.Checkpointer(workdir, read_only=True).all_steps() == [10]


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    workdir = str(tmp_path / "nan")
    train_and_evaluate(smoke(num_train_steps=10, eval_every_steps=10, checkpoint_every_steps=10), workdir)
    before = params_of(workdir)
    # A learning rate this large overflows the parameters within a few steps.
    with pytest.raises(NonFiniteLossError, match=r"train/\w+ is (nan|inf|-inf) at step \d+"):
        train_and_evaluate(smoke(num_train_steps=40, learning_rate=1e30, eval_every_steps=10,
                                 checkpoint_every_steps=10, likelihood="gaussian"), workdir,
                           allow_config_change="learning_rate,likelihood")
    assert checkpoint.Checkpointer(workdir, read_only=True).all_steps() == [10]
    assert_same_tree(before, params_of(workdir))


def test_batch_indices_are_epoch_permutations_and_chunk_independent():
    key = jax.random.PRNGKey(0)
    n, b = 50, 8   # 6 steps per epoch, 2 examples dropped per epoch
    whole = np.asarray(batches.batch_indices(key, jnp.asarray(0), 18, n, b))
    for epoch in range(3):
        seen = whole[epoch * 6:(epoch + 1) * 6].ravel()
        assert len(set(seen.tolist())) == 48 and seen.max() < n
    assert not np.array_equal(whole[:6], whole[6:12])
    # Any chunking of the steps yields the same batches (what makes resume exact).
    parts = [batches.batch_indices(key, jnp.asarray(s), k, n, b) for s, k in ((0, 5), (5, 7), (12, 6))]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_epoch_orders_give_the_batch_indices_of_any_chunking():
    """The trainer's indices (each epoch's permutation drawn once, on the host) against the in-program ones."""
    key = jax.random.PRNGKey(0)
    n, b = 50, 8   # 6 steps per epoch
    whole = np.asarray(batches.batch_indices(key, jnp.asarray(0), 30, n, b))
    orders = batches.EpochOrders(key, n, b)
    # Chunks within an epoch, across one boundary, across two (longer than an epoch), and one step.
    chunks = ((0, 4), (4, 5), (9, 14), (23, 1), (24, 6))
    np.testing.assert_array_equal(np.concatenate([orders.indices(s, k) for s, k in chunks]), whole)
    # A fresh cache asked out of order (a resume) gives the same rows; only the latest epochs are kept.
    resumed = batches.EpochOrders(key, n, b)
    np.testing.assert_array_equal(resumed.indices(17, 7), whole[17:24])
    np.testing.assert_array_equal(resumed.indices(2, 3), whole[2:5])
    assert len(resumed._orders) <= 2
    # Another key, another order (the comparison can fail).
    assert not np.array_equal(batches.EpochOrders(jax.random.PRNGKey(1), n, b).indices(0, 6), whole[:6])


def test_dynamic_binarization_resamples_and_static_is_fixed():
    x = jnp.full((1000,), 102, jnp.uint8)   # 0.4 after scaling
    a = batches.preprocess(x, jax.random.PRNGKey(0), "dynamic")
    b = batches.preprocess(x, jax.random.PRNGKey(1), "dynamic")
    assert set(np.unique(a).tolist()) == {0.0, 1.0} and not np.array_equal(a, b)
    assert abs(float(a.mean()) - 0.4) < 0.05
    images = np.full((2000,), 102, np.uint8)
    static = splits.binarize_static(images, seed=0)
    np.testing.assert_array_equal(static, splits.binarize_static(images, seed=0))
    assert abs(static.mean() / 255 - 0.4) < 0.05
    np.testing.assert_allclose(batches.preprocess(jnp.asarray(static), jax.random.PRNGKey(0), "static"),
                               static / 255.0)


def test_dynamic_binarization_draws_each_grey_level_with_its_probability():
    # Every grey level k in 4,096 examples × 2 draws: P(1) = k/255 within 5 sd (binomial), 0 and 255 exact.
    grey = jnp.tile(jnp.arange(256, dtype=jnp.uint8), (4096, 1))
    ones = np.concatenate([np.asarray(batches.preprocess(grey, jax.random.PRNGKey(seed), "dynamic"))
                           for seed in (0, 1)])
    p, n = np.arange(256) / 255, ones.shape[0]
    assert np.all(np.abs(ones.mean(0) - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12)
    assert ones[:, 0].max() == 0 and ones[:, 255].min() == 1
    # Both words of a block are used, and neighbouring pixels and examples are independent:
    # at k = 128, neighbours agree about half the time (n = 8,192 pairs each).
    half = np.asarray(batches.preprocess(jnp.full((8192, 2), 128, jnp.uint8), jax.random.PRNGKey(2), "dynamic"))
    assert abs(np.mean(half[:, 0] == half[:, 1]) - 0.5) < 0.03
    assert abs(np.mean(half[:-1, 0] == half[1:, 0]) - 0.5) < 0.03
    # The evaluation draw is jax.random.bernoulli's, as before (its own data, the same distribution).
    x = jnp.full((3, 784), 77, jnp.uint8)
    np.testing.assert_array_equal(batches.preprocess_eval(x, jax.random.PRNGKey(3), "dynamic"),
                                  jax.random.bernoulli(jax.random.PRNGKey(3), x / 255.0).astype(jnp.float32))


@pytest.mark.parametrize("key, value, message", [
    ("model", "nope", "config.model='nope' is not allowed: use one of"),
    ("dataset", "no_such_dataset_xyz", "config.dataset='no_such_dataset_xyz' is not allowed"),
    ("beta", -1.0, "config.beta=-1.0 is not allowed: use a number ≥ 0"),
    ("batch_size", 0, "config.batch_size=0 is not allowed: use a positive number"),
    ("latent_dim", -2, "config.latent_dim=-2 is not allowed"),
    ("num_train_steps", 0, "config.num_train_steps=0 is not allowed: use a positive integer, or -1"),
    ("binarize", "sometimes", "config.binarize='sometimes' is not allowed: use one of none, static, dynamic"),
])
def test_bad_config_values_are_refused_before_training(tmp_path, key, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        train_and_evaluate(smoke(**{key: value}), str(tmp_path))
    assert not os.path.exists(tmp_path / "checkpoints")


@pytest.mark.parametrize("override, expected", [
    ("--config.no_such_key=3", "no_such_key"),
    ("--config.model=nope", "config.model='nope' is not allowed"),
    ("--config.beta=-1", "config.beta=-1.0 is not allowed"),
    ("--config.hidden_dims=(0,)", "config.hidden_dims=(0,) is not allowed: use a tuple of positive integers"),
    ("--config.conv_channels=(8,-1)", "config.conv_channels=(8, -1) is not allowed: use a tuple of positive"),
    ("--config.latent_dim=0", "config.latent_dim=0 is not allowed: use a positive number"),
    ("--config.eval_batch_size=0", "config.eval_batch_size=0 is not allowed: use a positive number"),
])
def test_main_reports_bad_overrides_in_one_line(tmp_path, override, expected):
    result = subprocess.run(
        [sys.executable, "-m", "aejax.main", "--config=experiments/vae.py:smoke",
         f"--workdir={tmp_path}", override],
        cwd=REPO, capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "checkpoints")


def test_beta_vae_config_is_the_documented_default():
    config = beta_vae.get_config()
    assert (config.model, config.dataset, config.beta, config.latent_dim) == ("vae", "fashion_mnist", 4.0, 10)
    assert tuple(vae.get_config().hidden_dims) == (400,) and vae.get_config().latent_dim == 20


def test_main_reports_a_missing_config_file_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "aejax.main", "--config=experiments/no_such_file.py", f"--workdir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert result.returncode == 2
    assert "cannot load the config file experiments/no_such_file.py" in result.stderr
    assert "Traceback" not in result.stderr


def test_main_reports_a_config_file_syntax_error_with_its_line(tmp_path):
    path = tmp_path / "typo.py"
    path.write_text("from experiments import base\n\n\ndef get_config(size=None):\n"
                    "    c = base.get_config(size)\n    c.beta = (4.0\n    return c\n")
    result = subprocess.run(
        [sys.executable, "-m", "aejax.main", f"--config={path}:smoke", f"--workdir={tmp_path / 'run'}"],
        cwd=REPO, capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {path}, line 6: '(' was never closed (a Python syntax error in the config)"]


def test_a_model_too_large_for_memory_is_refused_before_allocating(tmp_path, monkeypatch, caplog):
    from aejax.data import placement
    latent = 100_000
    # An independent count for the smoke MLP VAE on 8x8 digits: 64 -> 32 -> (mean, logvar) -> 32 -> 64.
    num_params = (64 * 32 + 32) + 2 * (32 * latent + latent) + (latent * 32 + 32) + (32 * 64 + 64)
    adam = 3 * 4 * num_params  # params + two moments, float32
    monkeypatch.setattr(placement, "device_memory_bytes", lambda device: adam)  # the state alone fills it
    step = adam + 2 * 4 * num_params  # and gradients and updates
    with pytest.raises(ConfigError, match=rf"model 'vae' has {num_params:,} parameters: its train state takes "
                                          rf"{adam / 2**30:.2f} GiB and a step about {step / 2**30:.2f} GiB "
                                          r"\(of 0\.1 GiB on .*\); it cannot fit: make the model smaller"):
        train_and_evaluate(smoke(latent_dim=latent), str(tmp_path / "big"))
    assert not os.path.exists(tmp_path / "big" / "checkpoints")
    monkeypatch.setattr(placement, "device_memory_bytes", lambda device: 3 * adam)  # fits, but > 1/4
    train_and_evaluate(smoke(latent_dim=latent, num_train_steps=5, eval_every_steps=5,
                             checkpoint_every_steps=5), str(tmp_path / "fits"))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "parameters" in
                r.getMessage()]
    assert warnings and warnings[0].startswith(f"model 'vae' has {num_params:,} parameters")


def test_evaluation_is_a_per_example_mean_however_the_test_split_is_batched():
    """Full batches and a remainder are weighted by their sizes: 3 × 100 + 59 gives the mean of the 359 losses
    taken one image at a time. A deterministic model (an AE on unbinarised images): batching changes no noise."""
    config = smoke(model="ae", binarize="none")
    variant = objectives.get("ae")
    model = variant.build_model(config, (8, 8, 1))
    sample = jnp.zeros((1, 8, 8, 1))
    params = model.init(jax.random.PRNGKey(1), *variant.init_inputs(config, sample, jax.random.PRNGKey(2)))
    split = splits.load(config, "test")
    loss_fn = variant.make_loss(model, config)
    rng, step = jnp.zeros((2,), jnp.uint32), jnp.asarray(0)
    means = {}
    for batch_size in (100, 359):
        config.eval_batch_size = batch_size
        means[batch_size] = float(make_evaluate(loss_fn, config)(params, placement.put_on_device(split), rng,
                                                                 step)["loss"])
    one_at_a_time = [float(loss_fn(params, {"image": image[None] / 255.0, "label": label[None]}, rng, step)[0])
                     for image, label in zip(np.asarray(split.images, np.float32), np.asarray(split.labels))]
    assert means[100] == pytest.approx(np.mean(one_at_a_time), rel=1e-5)
    assert means[359] == pytest.approx(np.mean(one_at_a_time), rel=1e-5)
