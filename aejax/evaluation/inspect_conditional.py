"""Figures of a conditional run (cvae): what `python -m aejax.inspect` writes for a model that needs labels.

The figures of `inspect_run` encode and decode without a class; a conditional
model is shown with the test images' own labels instead: reconstructions,
the class-by-sample grid (one z per column, decoded with every class: the label
sets the class, z the style), and the codes q(z | x, y) in latents.npz.
"""
from __future__ import annotations

import functools
import os

import jax
import numpy as np

from aejax.core.files import save_arrays
from aejax.data.catalog import dataset_info
from aejax.figures import grids
from aejax.figures.page import Figure, save_figure, write_index_html


def conditional_figures(trained, data, out: str, options, title: str, evaluation, config: dict) -> list[Figure]:
    """reconstructions.png, class_samples.png, latents.npz and index.html under `out`."""
    class_names = list(dataset_info(trained.config.dataset).class_names)
    num = min(options.num_images, len(data.grey))
    num_cols = int(np.sqrt(num)) if num >= 16 else num
    shown: list[Figure] = []
    save = functools.partial(save_figure, out, shown)

    save("reconstructions.png", grids.reconstruction_grid(trained, data.grey[:num], num_cols, data.labels[:num]),
         "Reconstructions", "Rows labelled input: grey-level test inputs; below each, reconstruction: "
                            "decode(E_q[z | x, y], y) with the image's own label y.")
    columns = max(1, min(num_cols, 10))
    save("class_samples.png", grids.class_sample_grid(trained, jax.random.PRNGKey(options.seed), class_names, columns),
         "Samples by class", f"Row y: decode(z, y) for the same {columns} codes z ~ N(0, I) (one per column) and "
                             "class y: the label sets the class, z the style.")
    mean, logvar = _encode_with_labels(trained, data.x, data.labels, 500)
    save_arrays(os.path.join(out, "latents.npz"), codes=mean.astype(np.float32),
                logvar=logvar.astype(np.float32), labels=data.labels)
    write_index_html(os.path.join(out, "index.html"), title, shown, evaluation, config,
                     ["A conditional model: the figures of unconditional runs (manifold, traversals, "
                      "interpolations, scatter plots) need a class per code and are not drawn."])
    return shown


def _encode_with_labels(trained, x: np.ndarray, labels: np.ndarray, batch_size: int):
    """(mean, logvar) of q(z | x, y) for every image, in batches."""
    parts = [trained.encode(x[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return (np.concatenate([np.asarray(p[0]) for p in parts]), np.concatenate([np.asarray(p[1]) for p in parts]))
