"""aejax.data: builders prepare once into a tmp cache and read back exactly, without TensorFlow."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow_datasets as tfds

from aejax import data
from aejax.core.errors import DiskFullError
from aejax.data import builders, dsprites


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def fashion(cache):
    # Missing data fails (with the install instructions), never skips: setup.sh installs it.
    return {split: data.load_split("fashion_mnist", split, data_dir=cache) for split in ("train", "test")}


@pytest.fixture(scope="module")
def small(cache):
    return data.load_split("dsprites_small", "train", data_dir=cache)


def _write_idx(path, array: np.ndarray, type_code: int, compress: bool):
    header = struct.pack(">HBB", 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(payload)


class _CatalogStandIn(tfds.core.GeneratorBasedBuilder):
    """A non-aejax builder with 2-D images, reached the way a tfds catalog name is."""

    name = "aejax_test_catalog_stand_in"
    VERSION = tfds.core.Version("0.1.0")
    url_infos = None

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(3, 4), dtype=np.uint8, encoding=tfds.features.Encoding.BYTES),
            "label": tfds.features.ClassLabel(num_classes=5),
            "note": tfds.features.Text(),
        }), disable_shuffling=True)

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(20):
            yield i, {"image": np.full((3, 4), i, np.uint8), "label": i % 5, "note": "x"}


def test_catalog_names_go_through_tfds(tmp_path, monkeypatch):
    monkeypatch.setenv("AEJAX_TFDS_DIR", str(tmp_path))
    arrays = data.load_split(_CatalogStandIn.name, "train")
    assert set(arrays) == {"image", "label"}
    assert arrays["image"].shape == (20, 3, 4, 1) and arrays["image"].dtype == np.uint8
    assert arrays["label"].dtype == np.int32
    np.testing.assert_array_equal(arrays["image"][:, 0, 0, 0], np.arange(20))
    np.testing.assert_array_equal(data.load_split(_CatalogStandIn.name, "train[:5]")["label"], np.arange(5))
    assert data.dataset_info(_CatalogStandIn.name) == data.DatasetInfo(
        _CatalogStandIn.name, (3, 4, 1), 5, {"train": 20}, class_names=("0", "1", "2", "3", "4"))


def test_no_tensorflow():
    assert "tensorflow" not in sys.modules


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("AEJAX_TFDS_DIR", str(tmp_path / "env"))
    assert data.cache_dir() == tmp_path / "env"
    assert data.cache_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    monkeypatch.delenv("AEJAX_TFDS_DIR")
    assert data.cache_dir().parts[-3:] == (".cache", "aejax", "tensorflow_datasets")


def test_read_idx_against_independent_writer(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    _write_idx(tmp_path / "images.gz", images, 0x08, compress=True)
    np.testing.assert_array_equal(builders.read_idx(tmp_path / "images.gz", magic=0x0803), images)
    ints = rng.integers(-(2**31), 2**31, (4, 6), dtype=np.int32)  # big-endian on disk
    _write_idx(tmp_path / "ints", ints, 0x0C, compress=False)
    parsed = builders.read_idx(tmp_path / "ints")
    assert parsed.dtype == np.int32 and parsed.dtype.isnative
    np.testing.assert_array_equal(parsed, ints)

    with pytest.raises(ValueError, match="expected 0x00000801"):
        builders.read_idx(tmp_path / "images.gz", magic=0x0801)
    (tmp_path / "bad").write_bytes(b"\x01\x00\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="bad IDX magic"):
        builders.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(struct.pack(">HBBI", 0, 0x08, 1, 10) + b"\x00" * 9)
    with pytest.raises(ValueError, match="do not match shape"):
        builders.read_idx(tmp_path / "short")


def test_fashion_mnist(fashion):
    train, test = fashion["train"], fashion["test"]
    assert train["image"].shape == (60_000, 28, 28, 1) and test["image"].shape == (10_000, 28, 28, 1)
    for split in (train, test):
        assert split["image"].dtype == np.uint8 and split["label"].dtype == np.int32
        assert split["label"].min() == 0 and split["label"].max() == 9
    np.testing.assert_array_equal(np.bincount(train["label"]), [6_000] * 10)
    np.testing.assert_array_equal(np.bincount(test["label"]), [1_000] * 10)
    assert train["image"].max() == 255 and train["image"].min() == 0
    # Same order as the IDX files.
    source = builders.fashion_mnist_dir()
    np.testing.assert_array_equal(test["label"], builders.read_idx(source / "t10k-labels-idx1-ubyte.gz"))


def test_second_load_does_not_prepare_again(fashion, cache, monkeypatch, tmp_path):
    prepared = [os.path.join(root, f) for root, _, files in os.walk(os.path.join(cache, "aejax_fashion_mnist"))
                for f in files]
    mtimes = {path: os.stat(path).st_mtime_ns for path in prepared}
    monkeypatch.setenv("AEJAX_DATA_DIR", str(tmp_path))  # preparing again would now fail
    again = data.load_split("fashion_mnist", "test", data_dir=cache)
    np.testing.assert_array_equal(again["image"], fashion["test"]["image"])
    assert {path: os.stat(path).st_mtime_ns for path in prepared} == mtimes


def test_missing_fashion_mnist_files(monkeypatch, tmp_path):
    monkeypatch.setenv("AEJAX_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(data.DatasetNotFoundError) as error:
        data.load_split("fashion_mnist", "train", data_dir=str(tmp_path / "cache"))
    assert isinstance(error.value, FileNotFoundError)
    assert "apt-get install dataset-fashion-mnist" in str(error.value)
    assert "AEJAX_DATA_DIR" in str(error.value)
    assert not (tmp_path / "cache" / "aejax_fashion_mnist" / "1.0.0").exists()


def test_mnist_5k(cache):
    train, test = (data.load_split("mnist_5k", split, data_dir=cache) for split in ("train", "test"))
    assert train["image"].shape == (4_000, 28, 28, 1) and test["image"].shape == (1_000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(train["label"], minlength=10), [400] * 10)
    np.testing.assert_array_equal(np.bincount(test["label"], minlength=10), [100] * 10)
    assert len(set(train["label"][:100])) > 5  # stored shuffled, not sorted by class
    # The two splits partition the CSV.
    table = np.loadtxt(builders.mnist_5k_path(), delimiter=",", dtype=np.uint8)
    stored = np.concatenate([np.column_stack([s["image"].reshape(len(s["label"]), -1), s["label"]])
                             for s in (train, test)]).astype(np.uint8)
    np.testing.assert_array_equal(np.unique(stored, axis=0), np.unique(table, axis=0))


def test_digits_split_is_documented_one(cache):
    from sklearn.datasets import load_digits

    digits = load_digits()
    train_idx, test_idx = builders.stratified_split(
        digits.target, np.rint(0.2 * np.bincount(digits.target)).astype(int), seed=0)
    for split, idx in (("train", train_idx), ("test", test_idx)):
        arrays = data.load_split("digits", split, data_dir=cache)
        assert arrays["image"].shape == (len(idx), 8, 8, 1) and arrays["image"].dtype == np.uint8
        np.testing.assert_array_equal(arrays["label"], digits.target[idx])
        np.testing.assert_array_equal(arrays["image"][..., 0], np.rint(digits.images[idx] * 255 / 16))
    assert (len(train_idx), len(test_idx)) == (1_438, 359)


@pytest.mark.parametrize("name", data.KNOWN_DATASETS)
def test_dataset_info_is_static_and_consistent(name):
    info = data.dataset_info(name)
    assert info.name == name and len(info.image_shape) == 3
    assert len(info.factor_names) == len(info.factor_sizes) == (5 if "dsprites" in name else 0)
    builder = builders.BUILDERS[name]
    assert builder.name == "aejax_" + name  # never tfds's own fashion_mnist / dsprites
    assert str(builder.VERSION) == builder.SPEC.version and builder.SPEC is data.specs.SPECS[name]
    assert len(info.class_names) == info.num_classes > 0
    if info.factor_sizes:
        assert info.splits == {"train": int(np.prod(info.factor_sizes))}


def test_class_names_are_tfds_label_names(cache):
    assert data.dataset_info("fashion_mnist").class_names[:3] == ("T-shirt/top", "Trouser", "Pullover")
    assert data.dataset_info("dsprites").class_names == ("square", "ellipse", "heart")
    data.load_split("digits", "test", data_dir=cache)  # prepared
    source = data.data_source("digits", "test", data_dir=cache)
    assert tuple(source.dataset_info.features["label"].names) == data.dataset_info("digits").class_names


def test_a_cached_split_loads_without_importing_tfds(cache):
    data.load_split("digits", "test", data_dir=cache)  # prepared and cached
    script = ("import sys; from aejax import data; "
              f"x = data.load_split('digits', 'test', data_dir={cache!r}); "
              "assert x['image'].shape == (359, 8, 8, 1); "
              "heavy = [m for m in ('tensorflow_datasets', 'grain', 'sklearn', 'umap', 'matplotlib', "
              "'tensorboardX', 'torch') if m in sys.modules]; "
              "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", script], check=True)


def test_an_unknown_split_is_named_with_the_splits_there_are():
    with pytest.raises(data.ConfigError, match="fashion_mnist has no split 'tset'; its splits are train, test"):
        data.load_split("fashion_mnist", "tset")


def test_small_loads_match_dataset_info(cache):
    for name in ("mnist_5k", "digits"):
        info = data.dataset_info(name)
        for split, size in info.splits.items():
            arrays = data.load_split(name, split, data_dir=cache)
            assert arrays["image"].shape == (size, *info.image_shape)
            assert set(np.unique(arrays["label"])) == set(range(info.num_classes))


def test_builders_register_once():
    script = textwrap.dedent("""
        import importlib
        import tensorflow_datasets as tfds
        import aejax.data, aejax.data.builders as b, aejax.data.dsprites as d
        for module in (b, d, aejax.data, b):
            importlib.reload(module)
        assert tfds.builder_cls("aejax_dsprites_small").name == "aejax_dsprites_small"
    """)
    subprocess.run([sys.executable, "-c", script], check=True)


def test_concurrent_prepare_happens_once(tmp_path):
    script = "import sys; from aejax import data; print(len(data.load_split('digits', 'test', data_dir=sys.argv[1])['label']))"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [proc.communicate() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    assert [out.split()[-1] for out, _ in outputs] == ["359"] * 3
    assert sum("preparing digits (once)" in err for _, err in outputs) == 1


def test_preparing_says_one_line_instead_of_tfds_output(tmp_path):
    """aejax's one line, not tfds's bold console text, progress bars (escape codes) or log lines."""
    script = ("import sys; from absl import logging; logging.set_verbosity(logging.INFO); from aejax import data; "
              "data.load_split('digits', 'test', data_dir=sys.argv[1])")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                            check=True)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert any("preparing digits (once)" in line for line in lines), lines
    assert not any("\x1b" in line or "Downloading" in line or "tfds" in line.lower() or
                   "dataset_builder" in line for line in lines), lines
    assert len(lines) <= 2, lines  # "preparing digits (once) ..." and "prepared digits in 1.2s"


def test_preparing_on_a_full_disk_is_one_line_and_leaves_nothing_half_prepared(tmp_path, small_filesystem):
    with small_filesystem(tmp_path / "disk", 64) as mount:
        with pytest.raises(DiskFullError, match=rf"^preparing digits in {mount}: no space left on device "
                                                r"\(\d+\.\d MiB free\); free some space, or set AEJAX_TFDS_DIR "
                                                r"\(or config.data_dir\) to a disk with room, and rerun the same "
                                                r"command$"):
            data.load_split("digits", "test", data_dir=mount)
        left = [os.path.relpath(os.path.join(d, f), mount) for d, _, fs in os.walk(mount) for f in fs]
        assert [f for f in left if not f.startswith(".locks")] == []  # no incomplete folder, no dataset_info


# dSprites ---------------------------------------------------------------------------------------

def _centroids(images: np.ndarray) -> np.ndarray:
    """(x, y) pixel-coordinate centroids of binary images [N, 64, 64, 1]."""
    on = images[..., 0] > 0
    ys, xs = np.meshgrid(np.arange(64) + 0.5, np.arange(64) + 0.5, indexing="ij")
    count = on.sum(axis=(1, 2))
    return np.stack([(on * xs).sum(axis=(1, 2)) / count, (on * ys).sum(axis=(1, 2)) / count], axis=-1)


def _check_grid_sample(grid: dsprites.SpriteGrid, indices: np.ndarray, images: np.ndarray, factors: np.ndarray):
    np.testing.assert_array_equal(grid.indices(factors), indices)  # mixed radix, posY fastest
    assert set(np.unique(images)) <= {0, 255}
    assert (images > 0).sum(axis=(1, 2, 3)).min() >= 10
    values = grid.values(factors)
    expected = 8.75 + 46.5 * values[:, 3:5].astype(np.float64)
    assert np.abs(_centroids(images) - expected).max() < 1.0  # sprites are centred at their position


def test_dsprites_small_grid(small):
    grid = dsprites.DSPRITES_SMALL_GRID
    assert grid.sizes == data.dataset_info("dsprites_small").factor_sizes == (3, 6, 10, 8, 8)
    n = int(np.prod(grid.sizes))
    assert small["image"].shape == (n, 64, 64, 1) == (11_520, 64, 64, 1)
    assert small["factors"].dtype == np.int64 and small["factor_values"].dtype == np.float32
    np.testing.assert_array_equal(small["factors"], grid.factors(np.arange(n)))
    np.testing.assert_array_equal(small["factor_values"], grid.values(small["factors"]))
    np.testing.assert_array_equal(small["label"], small["factors"][:, 0])
    np.testing.assert_array_equal(small["factors"][1], [0, 0, 0, 0, 1])  # posY fastest
    np.testing.assert_array_equal(small["factors"][-1], np.array(grid.sizes) - 1)
    _check_grid_sample(grid, np.arange(n), small["image"], small["factors"])
    # What was stored is exactly what the renderer produces.
    some = np.random.default_rng(0).choice(n, 300, replace=False)
    np.testing.assert_array_equal(small["image"][some], dsprites.render_sprites(small["factor_values"][some]))


def _image(small, grid, factors):
    return small["image"][grid.indices(np.array([factors]))[0]]


def test_dsprites_position_scale_and_shape(small):
    grid = dsprites.DSPRITES_SMALL_GRID
    for shape in range(3):
        across = np.stack([_image(small, grid, (shape, 5, 0, x, 3)) for x in range(8)])
        down = np.stack([_image(small, grid, (shape, 5, 0, 3, y)) for y in range(8)])
        assert np.all(np.diff(_centroids(across)[:, 0]) > 5) and np.ptp(_centroids(across)[:, 1]) < 0.5
        assert np.all(np.diff(_centroids(down)[:, 1]) > 5) and np.ptp(_centroids(down)[:, 0]) < 0.5
        areas = [(_image(small, grid, (shape, s, 0, 4, 4)) > 0).sum() for s in range(6)]
        assert np.all(np.diff(areas) > 0), areas
    shapes = [_image(small, grid, (s, 5, 0, 4, 4)) for s in range(3)]
    for a in range(3):
        for b in range(a + 1, 3):
            assert (shapes[a] != shapes[b]).sum() > 20
    # Rotation changes the ellipse (a half-turn does not).
    ellipse = [_image(small, grid, (1, 5, o, 4, 4)) for o in range(10)]
    assert (ellipse[0] != ellipse[2]).sum() > 20


@pytest.mark.slow
def test_dsprites_full_grid_sample():
    grid = dsprites.DSPRITES_GRID
    assert grid.num_examples == 737_280 == data.dataset_info("dsprites").splits["train"]
    indices = np.sort(np.random.default_rng(0).choice(grid.num_examples, 2_000, replace=False))
    factors = grid.factors(indices)
    assert factors.min() >= 0 and np.all(factors.max(axis=0) < grid.sizes)
    np.testing.assert_array_equal(grid.factors([0, 1, 32, 1024, 40 * 1024, 737_279]),
                                  [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 1, 0, 0],
                                   [0, 1, 0, 0, 0], [2, 5, 39, 31, 31]])
    images = grid.render(factors)
    assert images.shape == (2_000, 64, 64, 1) and images.dtype == np.uint8
    _check_grid_sample(grid, indices, images, factors)
    # Rendering a point alone or inside a batch gives the same image.
    np.testing.assert_array_equal(grid.render(factors[:1]), images[:1])


# Array cache and evaluation split --------------------------------------------------------------

def test_whole_splits_are_cached_as_arrays_equal_to_tfds(small, cache):
    directory = os.path.join(cache, "aejax_dsprites_small", "1.0.0", "arrays", "train")
    meta = json.load(open(os.path.join(directory, "meta.json")))
    assert meta["image_encoding"] == "bits"  # 0/255 images: 1 bit per pixel on disk
    assert os.path.getsize(os.path.join(directory, "image.npy")) < 11_520 * 64 * 64 / 8 + 1024
    decoded = data.load_split("dsprites_small", "train[:100%]", data_dir=cache)  # a slice: read by tfds
    assert set(decoded) == set(small) == {"image", "label", "factors", "factor_values"}
    for key in small:
        assert small[key].dtype == decoded[key].dtype
        np.testing.assert_array_equal(small[key], decoded[key])
    some = np.array([0, 5, 77, 11_519])
    subset = data.load_split("dsprites_small", "train", data_dir=cache, indices=some)
    for key in small:
        np.testing.assert_array_equal(subset[key], small[key][some])
    # Grey-level images are stored raw.
    digits = data.load_split("digits", "test", data_dir=cache)
    meta = json.load(open(os.path.join(cache, "aejax_digits", "1.0.0", "arrays", "test", "meta.json")))
    assert meta["image_encoding"] == "raw"
    np.testing.assert_array_equal(digits["image"], data.load_split("digits", "test[:100%]", data_dir=cache)["image"])


def test_eval_split_is_declared_by_the_dataset(small, cache):
    assert data.dataset_info("digits").eval_split == "test" and data.dataset_info("digits").eval_subset == 0
    info = data.dataset_info("dsprites")
    assert (info.eval_split, info.eval_subset) == ("train", 5_000)
    np.testing.assert_array_equal(data.load_eval_split("digits", data_dir=cache)["label"],
                                  data.load_split("digits", "test", data_dir=cache)["label"])
    evaluation = data.load_eval_split("dsprites_small", data_dir=cache)
    indices = data.eval_subset_indices(11_520, 2_000)
    for key in small:
        np.testing.assert_array_equal(evaluation[key], small[key][indices])


def _fashion_copy(tmp_path):
    """The four Fashion-MNIST files in a directory of the test's own (to damage)."""
    source = builders.fashion_mnist_dir()
    copy = tmp_path / "fashion"
    copy.mkdir()
    for names in builders.FASHION_MNIST_FILES.values():
        for name in names:
            (copy / name).write_bytes((source / name).read_bytes())
    return copy


def test_a_truncated_or_wrong_sized_idx_file_is_named_with_the_fix(tmp_path, monkeypatch):
    copy = _fashion_copy(tmp_path)
    monkeypatch.setenv("AEJAX_DATA_DIR", str(copy))
    images = copy / "train-images-idx3-ubyte.gz"
    whole = images.read_bytes()
    images.write_bytes(whole[:100_000])  # truncated (a failed download or copy)
    with pytest.raises(data.DatasetCorruptError) as error:
        data.load_split("fashion_mnist", "train", data_dir=str(tmp_path / "cache"))
    assert str(error.value) == (
        f"{images} is damaged: Compressed file ended before the end-of-stream marker was reached; the "
        f"Fashion-MNIST files are not the official ones: put good copies in AEJAX_DATA_DIR={copy} (or unset it "
        f"to use {builders.FASHION_MNIST_SYSTEM_DIR})")
    _write_idx(images, np.zeros((100, 28, 28), np.uint8), 0x08, compress=True)  # whole, but the wrong size
    with pytest.raises(data.DatasetCorruptError, match=r"train images \(100, 28, 28\) and labels \(60000,\) are "
                                                       "not the official 60000 28x28 images: put good copies"):
        data.load_split("fashion_mnist", "train", data_dir=str(tmp_path / "cache"))
    images.write_bytes(whole)  # repaired: preparing works, nothing left over from the failures
    assert data.load_split("fashion_mnist", "test", data_dir=str(tmp_path / "cache"))["image"].shape == \
        (10_000, 28, 28, 1)


def test_a_damaged_idx_file_ends_the_command_in_one_line(tmp_path):
    copy = _fashion_copy(tmp_path)
    labels = copy / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:1000])
    result = subprocess.run(
        [sys.executable, "-m", "aejax.main", "--config=experiments/vae.py:smoke", "--config.dataset=fashion_mnist",
         f"--config.data_dir={tmp_path / 'cache'}", f"--workdir={tmp_path / 'run'}"],
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), capture_output=True,
        text=True, env=dict(os.environ, JAX_PLATFORMS="cpu", AEJAX_DATA_DIR=str(copy)))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {labels} is damaged: Compressed file ended")


def test_a_damaged_array_cache_is_named_and_rebuilt(tmp_path, caplog):
    cache = str(tmp_path / "cache")
    first = data.load_split("digits", "train", data_dir=cache)
    image_file = next(tmp_path.glob("cache/aejax_digits/*/arrays/train/image.npy"))
    os.truncate(image_file, os.path.getsize(image_file) // 2)
    again = data.load_split("digits", "train", data_dir=cache)
    assert f"the array cache {image_file} is damaged" in caplog.text and "rebuilding it" in caplog.text
    for key in first:
        np.testing.assert_array_equal(again[key], first[key])
    caplog.clear()
    np.testing.assert_array_equal(data.load_split("digits", "train", data_dir=cache)["image"], first["image"])
    assert "damaged" not in caplog.text  # rebuilt whole: read from the cache again
    (image_file.parent / "meta.json").write_text("{")  # a torn meta.json
    np.testing.assert_array_equal(data.load_split("digits", "train", data_dir=cache)["label"], first["label"])
    assert "meta.json cannot be read" in caplog.text
