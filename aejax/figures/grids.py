"""Image grids as PNG files (Pillow; no plotting library needed), and the grids of a trained model.

The model arguments (`trained`) are anything with `reconstruct(x)` and
`sample(key, n)` (`aejax.training.restore.TrainedModel`): figures are drawn
from arrays and those two calls, and import nothing of training. Grids whose
rows mean different things say so in a margin on the left (`label_rows`: the
input and reconstruction rows, a traversal's latent dim and its KL), drawn with
Pillow's own font: cheap enough for every figure a training run writes.
"""
from __future__ import annotations

import functools
import math
import os

import numpy as np

MIN_LABELLED_CELL = 24  # px: a labelled grid is scaled up (nearest neighbour) until a row is this tall
LABEL_COLOUR = (60, 60, 60)


def image_grid(images: np.ndarray, num_cols: int, pad: int = 1) -> np.ndarray:
    """Tile images [N, H, W, C] with values in [0, 1] into one uint8 [H', W', 3] grid."""
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    n, h, w, c = images.shape
    num_rows = -(-n // num_cols)
    grid = np.ones((num_rows * (h + pad) + pad, num_cols * (w + pad) + pad, c), np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, num_cols)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h,
             pad + col * (w + pad):pad + col * (w + pad) + w] = image
    return (grid * 255).round().astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _font(size: int):
    from PIL import ImageFont
    return ImageFont.load_default(size=size)


def label_rows(grid: np.ndarray, labels: list[str], cell: int, pad: int = 1) -> np.ndarray:
    """`grid` (uint8 [H, W, 3], rows of `cell`-pixel images, `pad` apart) with `labels[r]` left of row r.

    Small images are first scaled up by a whole factor, so that a row is at least
    MIN_LABELLED_CELL pixels tall and its label readable.
    """
    from PIL import Image, ImageDraw
    scale = max(1, math.ceil(MIN_LABELLED_CELL / cell))
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    row_height = (cell + pad) * scale
    font = _font(max(9, min(14, int(0.45 * row_height))))
    width = max(int(font.getlength(label)) for label in labels) + 8 if labels else 0
    canvas = Image.new("RGB", (grid.shape[1] + width, grid.shape[0]), (255, 255, 255))
    canvas.paste(Image.fromarray(grid), (width, 0))
    draw = ImageDraw.Draw(canvas)
    for row, label in enumerate(labels):
        centre = pad * scale + row * row_height + cell * scale / 2
        draw.text((width - 4, centre), label, fill=LABEL_COLOUR, font=font, anchor="rm")
    return np.asarray(canvas)


def interleave_rows(top: np.ndarray, bottom: np.ndarray, num_cols: int) -> np.ndarray:
    """Rows of `top` each followed by the matching row of `bottom` (input / output pairs)."""
    n = (len(top) // num_cols) * num_cols
    rows = []
    for start in range(0, n, num_cols):
        rows += [top[start:start + num_cols], bottom[start:start + num_cols]]
    return np.concatenate(rows)


def save_png(path: str, grid: np.ndarray, upscale: int = 2) -> str:
    from PIL import Image
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    image = Image.fromarray(grid)
    if upscale > 1:
        image = image.resize((grid.shape[1] * upscale, grid.shape[0] * upscale), Image.NEAREST)
    image.save(path)
    return path


def reconstruction_grid(trained, images: np.ndarray, num_cols: int, labels=None) -> np.ndarray:
    """Rows of inputs, each followed by the row of their reconstructions, labelled "input" / "reconstruction".

    `labels` (the images' classes) are what a conditional model reconstructs with; others ignore them.
    """
    recon = np.asarray(trained.reconstruct(images) if labels is None else trained.reconstruct(images, labels))
    rows = interleave_rows(images, recon, num_cols)
    labels = ["input", "reconstruction"] * (len(rows) // num_cols // 2)
    return label_rows(image_grid(rows, num_cols), labels, images.shape[1])


def sample_grid(trained, key, num: int, num_cols: int) -> np.ndarray:
    return image_grid(np.asarray(trained.sample(key, num)), num_cols)


def class_sample_grid(trained, key, class_names: list[str], num_samples: int) -> np.ndarray:
    """A conditional model's samples: row c decodes the same num_samples codes z ~ p(z) with class c.

    `sample(key, n, labels=c)` draws z from the key alone, so a column holds one z
    (one style) across the classes.
    """
    rows = [np.asarray(trained.sample(key, num_samples, labels=c)) for c in range(len(class_names))]
    return label_rows(image_grid(np.concatenate(rows), num_samples), list(class_names), rows[0].shape[1])


def denoising_grid(trained, corrupt, key, images: np.ndarray, num_cols: int) -> np.ndarray:
    """Rows of clean inputs, their corrupted versions, and the reconstructions of those (labelled)."""
    noisy = np.asarray(corrupt(key, images))
    recon = np.asarray(trained.reconstruct(noisy))
    rows = []
    for start in range(0, len(images) - num_cols + 1, num_cols):
        rows += [images[start:start + num_cols], noisy[start:start + num_cols], recon[start:start + num_cols]]
    labels = ["clean", "corrupted", "reconstruction"] * (len(rows) // 3)
    return label_rows(image_grid(np.concatenate(rows), num_cols), labels, images.shape[1])
