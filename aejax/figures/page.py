"""The HTML page of a run's figures: inspect/index.html."""
from __future__ import annotations

import dataclasses
import html
import json
import os

import numpy as np
from absl import logging

from aejax.core.files import atomic_write
from aejax.figures import grids


@dataclasses.dataclass(frozen=True)
class Figure:
    filename: str
    title: str
    caption: str


def save_figure(out: str, shown: list[Figure], name: str, grid: np.ndarray, title: str, caption: str) -> None:
    """Writes the image `grid` to out/name and lists it, with its title and caption, for the page."""
    grids.save_png(os.path.join(out, name), grid)
    shown.append(Figure(name, title, caption))
    logging.info("inspect: wrote %s", name)


@dataclasses.dataclass(frozen=True)
class EvalTable:
    """The evaluation shown on the page: a heading, a line of conventions, (metric, value, meaning) rows."""
    heading: str
    conventions: str
    rows: list[tuple[str, str, str]]


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_index_html(path: str, title: str, figures: list[Figure], evaluation: EvalTable | None,
                     config: dict, notes: list[str] = ()) -> str:
    """A page with `title`, the evaluation (or how to make one), every figure, `notes` and the config."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if evaluation is None:
        parts.append("<p>No eval.json yet: run <code>python -m aejax.evaluate --workdir=...</code>.</p>")
    else:
        parts.append(f"<h2>{html.escape(evaluation.heading)}</h2>")
        parts.append(f"<p>{html.escape(evaluation.conventions)}</p>")
        parts.append(_table(evaluation.rows, ("metric", "value", "meaning")))
    parts.append("<h2>Figures</h2>")
    for figure in figures:
        parts.append(f"<h3>{html.escape(figure.title)}</h3><p>{html.escape(figure.caption)}</p>"
                     f'<img src="{html.escape(figure.filename)}" alt="{html.escape(figure.title)}">')
    parts += [f"<p><em>{html.escape(note)}</em></p>" for note in notes]
    parts.append("<h2>Config</h2>")
    parts.append(_table([(k, json.dumps(v)) for k, v in sorted(config.items())], ("key", "value")))
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}img{max-width:100%;"
             "image-rendering:pixelated}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
             "padding:2px 8px;text-align:left}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    atomic_write(path, page)
    return path
