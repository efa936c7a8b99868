"""Outputs of a run directory: JSON, CSV, Markdown tables and PNG plots."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from l2o.io import write_json_atomic


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically (temporary file, then rename); NaN becomes null."""
    return write_json_atomic(path, obj)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def fmt(v):
        if isinstance(v, float):
            if not math.isfinite(v):
                return "—"
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_loss_csv(path: str | Path, curves: Mapping[str, np.ndarray], seeds: Mapping[str, Sequence[int]]) -> Path:
    """Long format: ``optimizer, seed, step, loss``."""
    path = Path(path)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["optimizer", "seed", "step", "loss"])
        for name, mat in curves.items():
            for seed, row in zip(seeds[name], mat):
                for step, value in enumerate(row):
                    w.writerow([name, seed, step, f"{value:.8g}"])
    return path


def plot_loss_curves(
    path: str | Path,
    curves: Mapping[str, np.ndarray],
    title: str,
    ylabel: str = "training loss",
    xlabel: str = "step",
) -> Path:
    """Mean over runs per step (line) with the 25-75 percentile band, log y-axis.

    Args:
        curves: name -> (runs, steps) array (NaN where a run had blown up).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    cmap = plt.get_cmap("tab20" if len(curves) > 10 else "tab10")
    for i, (name, mat) in enumerate(curves.items()):
        mat = np.asarray(mat, dtype=float)
        with np.errstate(all="ignore"):
            mean = np.nanmean(mat, axis=0)
            lo, hi = np.nanpercentile(mat, 25, axis=0), np.nanpercentile(mat, 75, axis=0)
        steps = np.arange(mat.shape[1])
        color = cmap(i % cmap.N)
        ax.plot(steps, mean, label=name, color=color, lw=1.6)
        ax.fill_between(steps, lo, hi, color=color, alpha=0.18, lw=0)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title + "\n(mean over runs; band: 25th-75th percentile)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
