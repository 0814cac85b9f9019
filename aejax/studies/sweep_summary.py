"""Summarise a sweep: python -m aejax.sweep_summary RUNS_DIR [--x=beta] [--metrics=a,b].

Reads every RUNS_DIR/*/eval.json (with the point's overrides from
sweep_point.json) and writes to RUNS_DIR:

* summary.csv: one row per point, every scalar metric;
* summary.md: mean ± std over seeds (sample std, n − 1), grouped by the
  other overrides, for the chosen metrics;
* rate_distortion.png: KL (rate) against E_q[−log p(x|z)] (distortion), nats
  per image, one point per group (and faintly per seed), where the runs
  report both (the VAE family);
* metrics_vs_<x>.png: each chosen metric against the swept value `x`
  (default: beta if swept, else the first numeric non-seed axis).
"""
from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import math
import os
import sys
from collections import defaultdict

import numpy as np

from aejax.core.files import atomic_write
from aejax.evaluation.evaluate_run import METRICS
from aejax.figures.plots import pyplot
from aejax.studies.sweep import POINT_FILE

SEED_KEYS = ("seed",)
DEFAULT_METRICS = ("elbo", "log_px_iw", "iw_gap", "kl", "reconstruction_nll", "recon_mse_per_pixel_grey",
                   "active_units", "kmeans_codes_accuracy", "kmeans_codes_nmi", "n2d_accuracy",
                   "n2d_nmi", "probe_codes_accuracy",
                   # dSprites runs (aejax.disentanglement_eval)
                   "disentanglement/beta_vae/eval_accuracy", "disentanglement/factor_vae/eval_accuracy",
                   "disentanglement/mig/score", "disentanglement/dci/disentanglement",
                   "disentanglement/sap/score", "disentanglement/modularity/score",
                   "disentanglement/explicitness/score")


def _number(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _sort_key(value: str):
    number = _number(value)
    return (0, number, "") if number is not None else (1, 0.0, str(value))


def collect(runs_dir: str) -> list[dict]:
    """One record per point with an eval.json: {'point', 'overrides', 'metrics'}."""
    records = []
    for path in sorted(glob.glob(os.path.join(runs_dir, "**", "eval.json"), recursive=True)):
        workdir = os.path.dirname(path)
        with open(path) as f:
            report = json.load(f)
        point_file = os.path.join(workdir, POINT_FILE)
        overrides = {}
        if os.path.exists(point_file):
            with open(point_file) as f:
                overrides = json.load(f)["overrides"]
        records.append({"point": os.path.relpath(workdir, runs_dir), "overrides": overrides,
                        "metrics": report["metrics"]})
    return records


def write_csv(path: str, records: list[dict]) -> None:
    keys = sorted({k for r in records for k in r["overrides"]})
    metrics = [m for m in METRICS if any(m in r["metrics"] for r in records)]
    metrics += sorted({m for r in records for m in r["metrics"]} - set(metrics))
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["point", *keys, *metrics])
    for r in records:
        writer.writerow([r["point"], *(r["overrides"].get(k, "") for k in keys),
                         *(r["metrics"].get(m, "") for m in metrics)])
    atomic_write(path, text.getvalue())


def group(records: list[dict]) -> tuple[list[str], dict[tuple, list[dict]]]:
    """Records by the values of the non-seed overrides, groups in numeric order."""
    keys = [k for k in dict.fromkeys(k for r in records for k in r["overrides"]) if k not in SEED_KEYS]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        groups[tuple(r["overrides"].get(k, "") for k in keys)].append(r)
    ordered = dict(sorted(groups.items(), key=lambda item: [_sort_key(v) for v in item[0]]))
    return keys, ordered


def mean_std(records: list[dict], metric: str) -> tuple[float, float, int]:
    values = np.array([r["metrics"][metric] for r in records if metric in r["metrics"]], np.float64)
    if len(values) == 0:
        return math.nan, math.nan, 0
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0, len(values)


def _format(mean: float, std: float, n: int) -> str:
    if n == 0:
        return "–"
    decimals = 1 if abs(mean) >= 100 else 2 if abs(mean) >= 10 else 3
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}" if n > 1 else f"{mean:.{decimals}f}"


def markdown_table(keys: list[str], groups: dict[tuple, list[dict]], metrics: list[str]) -> str:
    header = [*keys, "n", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for values, members in groups.items():
        cells = [*values, str(len(members))]
        cells += [_format(*mean_std(members, m)) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _series(keys: list[str], groups: dict[tuple, list[dict]], x_key: str):
    """Groups split into lines: one per combination of the overrides other than x."""
    x_index = keys.index(x_key)
    lines: dict[tuple, list[tuple[float, list[dict]]]] = defaultdict(list)
    for values, members in groups.items():
        rest = values[:x_index] + values[x_index + 1:]
        lines[rest].append((_number(values[x_index]), members))
    other = [k for k in keys if k != x_key]
    for rest, entries in lines.items():
        label = ", ".join(f"{k}={v}" for k, v in zip(other, rest))
        yield label, sorted(entries, key=lambda e: e[0])


def plot_rate_distortion(path: str, keys: list[str], groups, x_key: str | None) -> bool:
    if not any("kl" in r["metrics"] and "reconstruction_nll" in r["metrics"]
               for members in groups.values() for r in members):
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    for label, entries in (_series(keys, groups, x_key) if x_key else [("", [(None, m) for m in groups.values()])]):
        rates, distortions = [], []
        for x, members in entries:
            for r in members:
                ax.scatter(r["metrics"]["kl"], r["metrics"]["reconstruction_nll"], s=8, color="0.6", zorder=1)
            (rate, rate_std, _), (dist, dist_std, _) = mean_std(members, "kl"), mean_std(members, "reconstruction_nll")
            rates.append(rate)
            distortions.append(dist)
            ax.errorbar(rate, dist, xerr=rate_std, yerr=dist_std, fmt="o", color="C0", ms=5, zorder=2)
            if x is not None:
                ax.annotate(f"{x_key}={x:g}", (rate, dist), textcoords="offset points", xytext=(5, 5), fontsize=8)
        ax.plot(rates, distortions, "-", alpha=0.6, label=label or None)
    ax.set(xlabel="rate: KL(q(z|x) ‖ p(z)) [nats/image]",
           ylabel="distortion: E_q[−log p(x|z)] [nats/image]", title="Rate–distortion (eval split)")
    if any(label for label, _ in (_series(keys, groups, x_key) if x_key else [])):
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def plot_metrics(path: str, keys: list[str], groups, x_key: str, metrics: list[str]) -> None:
    plt = pyplot()
    cols = min(4, len(metrics))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), dpi=100, squeeze=False)
    xs = [_number(v[keys.index(x_key)]) for v in groups]
    log_x = all(x is not None and x > 0 for x in xs) and max(xs) / min(xs) >= 8
    for ax, metric in zip(axes.flat, metrics):
        for label, entries in _series(keys, groups, x_key):
            stats = [mean_std(members, metric) for _, members in entries]
            ax.errorbar([x for x, _ in entries], [s[0] for s in stats], yerr=[s[1] for s in stats],
                        fmt="o-", ms=4, capsize=2, label=label or None)
        ax.set_title(metric.removeprefix("disentanglement/"), fontsize=9)
        ax.set_xlabel(x_key, fontsize=8)
        if log_x:
            ax.set_xscale("log", base=2)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle(f"metrics against {x_key} (mean ± std over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def choose_x(keys: list[str], groups) -> str | None:
    numeric = [k for i, k in enumerate(keys) if all(_number(v[i]) is not None for v in groups)]
    return "beta" if "beta" in numeric else (numeric[0] if numeric else None)


def summarise(runs_dir: str, x_key: str | None = None, metrics: list[str] | None = None) -> dict:
    """Write the CSV, markdown table and plots; return their paths and the table."""
    records = collect(runs_dir)
    if not records:
        raise FileNotFoundError(f"no */eval.json under {runs_dir}; run the sweep (launch.sh) first")
    keys, groups = group(records)
    present = {m for r in records for m in r["metrics"]}
    metrics = [m for m in (metrics or DEFAULT_METRICS) if m in present]
    out = {"csv": os.path.join(runs_dir, "summary.csv"), "markdown": os.path.join(runs_dir, "summary.md")}
    write_csv(out["csv"], records)
    table = markdown_table(keys, groups, metrics)
    atomic_write(out["markdown"], f"{len(records)} runs in {runs_dir}; mean ± std over "
                                  f"{'/'.join(SEED_KEYS)} (sample std); nats per image.\n\n{table}\n")
    out["table"] = table
    x_key = x_key or choose_x(keys, groups)
    if x_key is not None and x_key not in keys:
        raise ValueError(f"--x={x_key} is not a swept key (swept: {', '.join(keys) or 'none'})")
    rd_path = os.path.join(runs_dir, "rate_distortion.png")
    if plot_rate_distortion(rd_path, keys, groups, x_key):
        out["rate_distortion"] = rd_path
    if x_key is not None and metrics:
        out["metrics_plot"] = os.path.join(runs_dir, f"metrics_vs_{x_key}.png")
        plot_metrics(out["metrics_plot"], keys, groups, x_key, metrics)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m aejax.sweep_summary", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir")
    parser.add_argument("--x", default=None, help="swept key for the x axis (default: beta if swept)")
    parser.add_argument("--metrics", default=None,
                        help=f"comma-separated metrics for the table and plots (default: {','.join(DEFAULT_METRICS)})")
    args = parser.parse_args(argv)
    try:
        out = summarise(args.runs_dir, args.x, args.metrics.split(",") if args.metrics else None)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(out.pop("table"))
    for name, path in out.items():
        print(f"wrote {name}: {path}")
    return 0

