"""Learning-curve plots: mean ± std per strategy, the full-pool score as a reference line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

METRIC_NAMES = {"uar": "UAR", "cc": "Pearson CC"}


def plot_learning_curves(summary: dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Write the learning curves of `summary` (summary.json's dict) to a PNG at `path`; beside
    them, for a strategy that logs its sources (`auto`), the share of each source per iteration."""
    mixed = {name: st["sources"] for name, st in summary["strategies"].items() if st.get("sources")}
    if not mixed:
        fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    else:
        fig, axes = plt.subplots(
            1, 1 + len(mixed), figsize=(7.5 + 5 * len(mixed), 4.8), dpi=120, squeeze=False
        )
        ax = axes[0, 0]
        for side, (name, sources) in zip(axes[0, 1:], mixed.items(), strict=True):
            plot_shares(side, sources, name)
    for name, st in summary["strategies"].items():
        labels, mean, std = (np.asarray(st[k], float) for k in ("labels", "mean", "std"))
        style = {"color": "0.3", "linestyle": "--"} if name == "random" else {}
        line = ax.plot(
            labels, mean, marker="o", markersize=3, label=f"{name} (AULC {st['aulc']:.3f})", **style
        )[0]
        ax.fill_between(labels, mean - std, mean + std, alpha=0.08, color=line.get_color())
    full = summary.get("full_pool_score")
    if full is not None:
        ax.axhline(full, color="black", linewidth=0.8, linestyle=":", label=f"full pool ({full:.3f})")
    metric = METRIC_NAMES.get(summary["metric"], summary["metric"])
    ax.set_xlabel("labelled clips")
    ax.set_ylabel(metric)
    n_runs = len(next(iter(summary["strategies"].values()))["final"])
    ax.set_title(title or f"{Path(summary['dataset']).name}: {metric}, mean ± std over {n_runs} runs")
    return _finish(fig, ax, path)


def plot_shares(ax: Any, sources: dict[str, Any], name: str) -> None:
    """Stacked shares of each source of a strategy's batches (summary.json's `sources`) per iteration."""
    labels = np.asarray(sources["labels"], float)
    names = list(sources["shares"])
    ax.stackplot(labels, *(np.asarray(sources["shares"][k], float) for k in names), labels=names, alpha=0.85)
    ax.set_xlabel("labelled clips (after the iteration)")
    ax.set_ylabel("share of the batch")
    ax.set_ylim(0, 1)
    ax.set_title(f"{name}: where each batch came from (mean over runs)")
    ax.legend(fontsize=7, loc="upper right")


def plot_policies(policies: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Accuracy (ratings: mean absolute error) against answers used per item, one point
    (± std over runs) per policy."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=120)
    key = "mae" if all("mae" in p for p in policies.values()) and policies else "accuracy"
    for name, p in policies.items():
        ax.errorbar(
            p["answers_per_item"],
            p[key],
            yerr=p.get(f"{key}_std", 0),
            fmt="o",
            capsize=3,
            label=f"{name}: {p[key]:.4f} at {p['answers_per_item']:.2f}",
        )
    ax.set_xlabel("answers per item")
    ax.set_ylabel("mean absolute error against truth" if key == "mae" else "accuracy against truth")
    ax.set_title(title or "redundancy policies")
    return _finish(fig, ax, path)


def _finish(fig: Any, ax: Any, path: str | Path) -> Path:
    """Grid, legend, tight layout; save the figure as a PNG at `path` and free it."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
