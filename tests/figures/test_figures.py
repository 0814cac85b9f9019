"""Figures that explain themselves: labelled grid rows, class names in the scatter legend."""
import types

import numpy as np

from aejax.figures import grids, latents, plots


def _rows_with_ink(margin: np.ndarray) -> np.ndarray:
    return np.flatnonzero((margin < 200).any(axis=(1, 2)))


def test_label_rows_keeps_the_grid_exact_and_writes_each_label_beside_its_row():
    rng = np.random.default_rng(0)
    images = rng.random((6, 8, 8, 1)).astype(np.float32)
    grid = grids.image_grid(images, num_cols=3)  # 2 rows of 8-px images, 1 px apart
    labelled = grids.label_rows(grid, ["input", "reconstruction"], cell=8)
    scale = -(-grids.MIN_LABELLED_CELL // 8)  # 3: rows at least 24 px tall
    width = labelled.shape[1] - grid.shape[1] * scale
    assert width > 40 and labelled.shape[0] == grid.shape[0] * scale
    np.testing.assert_array_equal(labelled[:, width:], np.kron(grid, np.ones((scale, scale, 1), np.uint8)))
    ink = _rows_with_ink(labelled[:, :width])
    row_height = 9 * scale
    # Each label's ink lies within its own row, and both rows have one.
    assert set(ink // row_height) == {0, 1}
    for row in (0, 1):
        rows = ink[ink // row_height == row]
        assert rows.min() >= row * row_height and rows.max() < (row + 1) * row_height
    # A longer label needs a wider margin; no labels, no margin.
    assert grids.label_rows(grid, ["in", "out"], cell=8).shape[1] < labelled.shape[1]
    assert grids.label_rows(grid, [], cell=28).shape == grid.shape


def test_reconstruction_and_denoising_grids_label_what_each_row_is(monkeypatch):
    seen = []
    monkeypatch.setattr(grids, "label_rows", lambda grid, labels, cell: seen.append((labels, cell)) or grid)
    trained = types.SimpleNamespace(reconstruct=lambda x: 1 - np.asarray(x))
    images = np.random.default_rng(1).random((8, 5, 5, 1)).astype(np.float32)
    grids.reconstruction_grid(trained, images, num_cols=4)
    grids.denoising_grid(trained, lambda key, x: x * 0.5, None, images, num_cols=4)
    assert seen == [(["input", "reconstruction"] * 2, 5), (["clean", "corrupted", "reconstruction"] * 2, 5)]


def test_traversal_rows_name_their_dim_and_its_kl(monkeypatch):
    seen = []
    monkeypatch.setattr(latents, "label_rows", lambda grid, labels, cell: seen.append(labels) or grid)
    trained = types.SimpleNamespace(variant=types.SimpleNamespace(generative=True),
                                    decode=lambda z: np.zeros((len(z), 4, 4, 1), np.float32))
    codes = np.random.default_rng(2).normal(size=(50, 3)) * np.array([0.1, 3.0, 1.0])
    _, dims = latents.traversal_grid(trained, codes, codes[0], steps=5, max_dims=3,
                                     kl_per_dim=np.array([0.01, 2.5, 1.25]))
    assert list(dims) == [1, 2, 0]  # most active first
    latents.traversal_grid(trained, codes, codes[0], steps=5, max_dims=2)
    assert seen == [["z_1  KL 2.50", "z_2  KL 1.25", "z_0  KL 0.01"], ["z_1", "z_2"]]


def test_the_scatter_legend_names_the_classes(monkeypatch, tmp_path):
    plt = plots.pyplot()
    closed = []
    monkeypatch.setattr(plt, "close", closed.append)
    points = np.random.default_rng(3).normal(size=(30, 2))
    labels = np.repeat([0, 2, 3], 10)
    plots.scatter_plot(str(tmp_path / "s.png"), points, labels, "t", ("x", "y"),
                       class_names=("T-shirt/top", "Trouser", "Pullover", "Dress"))
    plots.scatter_plot(str(tmp_path / "n.png"), points, labels, "t", ("x", "y"))
    named, numbered = (fig.axes[0].get_legend() for fig in closed)
    assert [t.get_text() for t in named.get_texts()] == ["T-shirt/top", "Pullover", "Dress"]
    assert named.get_title().get_text() == "class"
    assert [t.get_text() for t in numbered.get_texts()] == ["0", "2", "3"]
    assert (tmp_path / "s.png").stat().st_size > 10_000
