"""Procedural dSprites: 64x64 binary sprites on the original factor grid, rendered with numpy.

The original dSprites (Matthey et al. 2017) is every combination of five factors,
stored in mixed-radix order (shape slowest, posY fastest)::

    shape        3   square, ellipse, heart   (value 1, 2, 3 as in the original latents_values)
    scale        6   linspace(0.5, 1, 6)
    orientation 40   linspace(0, 2*pi, 40)    (0 and 2*pi both present, as in the original)
    pos_x       32   linspace(0, 1, 32)
    pos_y       32   linspace(0, 1, 32)

``index = ravel_multi_index(factors, sizes)``: 737,280 images (``aejax_dsprites``).
``aejax_dsprites_small`` is the same construction with sizes (3, 6, 10, 8, 8):
orientation ``linspace(0, 2*pi, 10)``, pos_x and pos_y ``linspace(0, 1, 8)``;
11,520 images (their tfds builders are in ``aejax.data.builders``, their
descriptions in ``aejax.data.specs``). Both have one split, ``train`` (the whole grid, in order). Runs
train on all of it and evaluate on a fixed random subset of it (5,000 images for
``dsprites``, 2,000 for ``dsprites_small``; ``aejax.data.load_eval_split``): there is
no held-out data, and disentanglement is measured on the generative factors.

Features: ``image`` uint8 ``[64, 64, 1]`` with values 0 or 255 (so "divide by
255" gives the binary image, like every other dataset here), ``label`` = shape
index (0 square, 1 ellipse, 2 heart), ``factors`` int64 [5] indices into the
grid, ``factor_values`` float32 [5] values.

Rendering. Pixel ``(row, col)`` covers ``[col, col+1) x [row, row+1)``. A sprite
is centred at ``(8.75 + 46.5 * pos_x, 8.75 + 46.5 * pos_y)`` (column, row; posY
grows downwards), so on the full grid centres sit 1.5 px apart from 8.75 to 55.25;
centres are rounded to 1/64 px. The shape is an implicit inside-test on
coordinates rotated counter-clockwise (as seen on screen) by ``orientation`` and
divided by ``9 px * scale``: square ``max(|u|, |v|) <= 0.7``; ellipse
``u^2 + (v / 0.5)^2 <= 1``; heart ``(x^2 + y^2 - 1)^3 <= x^2 y^3`` on
``(x, y) = (u, v) / 0.773 + (0, 0.293)`` (pointing down at orientation 0, rotated
about its centroid). Each shape fits in a disc of radius 9 px at scale 1, so at
most a quarter pixel can fall outside the canvas (never enough to light a pixel). A pixel is on when at least half of its 4x4
sub-samples are inside.

How this differs from the original dSprites files:

* The shapes are analytic (above), not the original bitmaps; sizes, aspect ratio
  of the ellipse and the heart's outline are close but not equal.
* Pixels are 4x4-supersampled and thresholded at 0.5, so edges differ from the
  original's rasterisation by about a pixel; exact pixel placement, the origin of
  posY (ours: top) and the direction of rotation are not guaranteed to match.
* Factor values, their order and the grid size are identical, so factor-based
  code (disentanglement metrics, latent traversals) works unchanged; numbers
  measured here are not comparable pixel-for-pixel with results on the original.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
SHAPE_NAMES = ("square", "ellipse", "heart")
CANVAS = 64

_RADIUS_PX = 9.0  # sprite radius at scale 1
_POS_OFFSET_PX, _POS_SPAN_PX = 8.75, 46.5
_CENTRE_QUANTUM = 64  # centres rounded to 1/64 px, so equal sub-pixel offsets render once
_SUPERSAMPLE = 4
_HALF_WINDOW = int(_RADIUS_PX) + 1  # px each side of the centre's pixel; a stamp is square
_WINDOW = 2 * _HALF_WINDOW + 1
_RENDER_CHUNK = 4096  # images rendered at once (bounds the padded canvas to ~50 MB)
_STAMP_CHUNK = 256  # stamps evaluated at once (~30 MB of float64 sub-samples)
_HEART_SCALE, _HEART_SHIFT = 0.773, 0.293  # unit heart fits radius 1 about its centroid


def _square(u, v):
    return np.maximum(np.abs(u), np.abs(v)) <= 0.7


def _ellipse(u, v):
    return u * u + (v / 0.5) ** 2 <= 1.0


def _heart(u, v):
    x, y = u / _HEART_SCALE, v / _HEART_SCALE + _HEART_SHIFT
    return (x * x + y * y - 1.0) ** 3 <= x * x * y ** 3


_INSIDE = (_square, _ellipse, _heart)


def _render_stamps(shape, scale, theta, frac_x, frac_y) -> np.ndarray:
    """Binary ``[n, W, W]`` windows around the centre's pixel, for sub-pixel offsets ``frac``."""
    grid = (np.arange(_WINDOW * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - _HALF_WINDOW
    stamps = np.empty((len(shape), _WINDOW, _WINDOW), bool)
    for start in range(0, len(shape), _STAMP_CHUNK):
        s = slice(start, start + _STAMP_CHUNK)
        dx = grid[None, None, :] - frac_x[s, None, None]
        up = frac_y[s, None, None] - grid[None, :, None]  # rows grow downwards
        cos, sin = np.cos(theta[s])[:, None, None], np.sin(theta[s])[:, None, None]
        radius = _RADIUS_PX * scale[s, None, None]
        u, v = (cos * dx + sin * up) / radius, (cos * up - sin * dx) / radius
        inside = np.empty(u.shape, bool)
        for shape_id, test in enumerate(_INSIDE):
            mask = shape[s] == shape_id
            inside[mask] = test(u[mask], v[mask])
        n = len(inside)
        coverage = inside.reshape(n, _WINDOW, _SUPERSAMPLE, _WINDOW, _SUPERSAMPLE).mean(axis=(2, 4))
        stamps[s] = coverage >= 0.5
    return stamps


def _render_chunk(values: np.ndarray) -> np.ndarray:
    shape = np.rint(values[:, 0]).astype(np.int64) - 1
    centre = np.rint((_POS_OFFSET_PX + _POS_SPAN_PX * values[:, 3:5]) * _CENTRE_QUANTUM) / _CENTRE_QUANTUM
    pixel = np.floor(centre)
    # Images that differ only by whole-pixel shifts share a stamp: render each once.
    keys = np.column_stack([shape, values[:, 1:3], centre - pixel])
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    stamps = _render_stamps(unique[:, 0].astype(np.int64), *unique[:, 1:].T)
    pad = _WINDOW
    canvas = np.zeros((len(values), CANVAS + 2 * pad, CANVAS + 2 * pad), bool)
    origin = pixel.astype(np.int64) - _HALF_WINDOW + pad  # (col, row) of each window
    offsets = np.arange(_WINDOW)
    rows = (origin[:, 1, None] + offsets)[:, :, None]
    cols = (origin[:, 0, None] + offsets)[:, None, :]
    canvas[np.arange(len(values))[:, None, None], rows, cols] = stamps[inverse.reshape(-1)]
    return canvas[:, pad:pad + CANVAS, pad:pad + CANVAS, None].astype(np.uint8) * np.uint8(255)


def render_sprites(factor_values: np.ndarray) -> np.ndarray:
    """uint8 images ``[N, 64, 64, 1]`` (0/255) of factor values ``[N, 5]`` (as in ``factor_values``).

    Any values are accepted within the grid's ranges (shape 1..3, scale in (0, 1],
    positions in [0, 1]), not only grid points; rendered in bounded-memory chunks.
    """
    values = np.asarray(factor_values, np.float64).reshape(-1, len(FACTOR_NAMES))
    if not (np.isin(values[:, 0], (1, 2, 3)).all() and (values[:, 1] > 0).all() and (values[:, 1] <= 1).all()
            and (values[:, 3:] >= 0).all() and (values[:, 3:] <= 1).all()):
        raise ValueError("factor values out of range: shape in {1,2,3}, scale in (0,1], positions in [0,1]")
    images = np.empty((len(values), CANVAS, CANVAS, 1), np.uint8)
    for start in range(0, len(values), _RENDER_CHUNK):
        images[start:start + _RENDER_CHUNK] = _render_chunk(values[start:start + _RENDER_CHUNK])
    return images


@dataclasses.dataclass(frozen=True)
class SpriteGrid:
    """A dSprites factor grid: sizes ``(shape, scale, orientation, pos_x, pos_y)``, shape always 3."""

    sizes: tuple[int, int, int, int, int]

    @property
    def num_examples(self) -> int:
        return int(np.prod(self.sizes))

    def factors(self, indices: np.ndarray) -> np.ndarray:
        """Factor indices ``[N, 5]`` (int64) of dataset indices: mixed radix, posY fastest."""
        return np.stack(np.unravel_index(np.asarray(indices, np.int64), self.sizes), axis=-1).astype(np.int64)

    def indices(self, factors: np.ndarray) -> np.ndarray:
        return np.ravel_multi_index(tuple(np.asarray(factors).T), self.sizes).astype(np.int64)

    def values(self, factors: np.ndarray) -> np.ndarray:
        """Factor values ``[N, 5]`` (float32) of factor indices."""
        factors = np.asarray(factors)
        axes = (np.arange(1, 4), np.linspace(0.5, 1, self.sizes[1]), np.linspace(0, 2 * np.pi, self.sizes[2]),
                np.linspace(0, 1, self.sizes[3]), np.linspace(0, 1, self.sizes[4]))
        return np.stack([axis[factors[..., k]] for k, axis in enumerate(axes)], axis=-1).astype(np.float32)

    def render(self, factors: np.ndarray) -> np.ndarray:
        """Images of factor indices ``[N, 5]``: an ``observe`` for ``aejax.evaluation.disentanglement.FactorSpace``."""
        return render_sprites(self.values(factors))

    def batches(self, chunk: int = 8192) -> Iterator[dict[str, np.ndarray]]:
        """The whole grid in order, ``chunk`` examples at a time, as stored by the builders."""
        for start in range(0, self.num_examples, chunk):
            factors = self.factors(np.arange(start, min(start + chunk, self.num_examples)))
            values = self.values(factors)
            yield {"image": render_sprites(values), "label": factors[:, 0],
                   "factors": factors, "factor_values": values}


DSPRITES_GRID = SpriteGrid((3, 6, 40, 32, 32))
DSPRITES_SMALL_GRID = SpriteGrid((3, 6, 10, 8, 8))
