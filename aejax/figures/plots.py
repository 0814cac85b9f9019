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
                 axis_names: tuple[str, str], class_names: tuple[str, ...] = ()) -> str:
    """2-D points coloured by class label; the legend names each class (`class_names[label]`) if given."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=100)
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i, c in enumerate(classes):
        mask = labels == c
        name = class_names[c] if 0 <= c < len(class_names) else str(c)
        ax.scatter(points[mask, 0], points[mask, 1], s=3, alpha=0.6, color=cmap(i % cmap.N), label=name,
                   rasterized=True)
    ax.set(title=title, xlabel=axis_names[0], ylabel=axis_names[1])
    ax.legend(title="class" if class_names else "label", markerscale=4, fontsize=8, loc="center left",
              bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
