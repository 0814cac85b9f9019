"""Plots drawn with matplotlib's Agg backend (no display needed), imported only when a plot is drawn."""
from __future__ import annotations

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def scatter_plot(path: str, points: np.ndarray, labels: np.ndarray, title: str,
                 axis_names: tuple[str, str]) -> str:
    """2-D points coloured by class label."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=100)
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i, c in enumerate(classes):
        mask = labels == c
        ax.scatter(points[mask, 0], points[mask, 1], s=3, alpha=0.6, color=cmap(i % cmap.N), label=str(c),
                   rasterized=True)
    ax.set(title=title, xlabel=axis_names[0], ylabel=axis_names[1])
    ax.legend(title="label", markerscale=4, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
