"""From curves to `summary.json`: mean ± std curves, areas under them, labels needed, p-values."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
from scipy.stats import ttest_rel

from listenloop.sim.experiment import ExperimentResult
from listenloop.sim.metrics import MAIN_METRIC

#: The fields every strategy has in summary.json (the contract outside checks read).
STRATEGY_KEYS = (
    "labels",
    "mean",
    "std",
    "final",
    "aulc_runs",
    "aulc",
    "labels_to_passive_best",
    "p_value_vs_random",
)


def aulc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under a learning curve divided by its label range: the curve's mean height."""
    labels, scores = np.asarray(labels, float), np.asarray(scores, float)
    if len(labels) < 2 or labels[-1] == labels[0]:
        return float(scores.mean())
    return float(np.trapezoid(scores, labels) / (labels[-1] - labels[0]))


def _aligned(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Curves of one strategy on a common label axis: the first run's sizes when all runs asked the
    same, otherwise the mean size per step (runs stopped early are carried forward)."""
    length = max(len(lab) for lab, _ in curves)
    lab = np.array([np.pad(lb, (0, length - len(lb)), mode="edge") for lb, _ in curves], float)
    sc = np.array([np.pad(s, (0, length - len(s)), mode="edge") for _, s in curves], float)
    return lab, sc


def _p_value(a: np.ndarray, b: np.ndarray) -> float | None:
    """Paired t-test p; None for unpaired runs, one run, or areas equal within 1e-4 (solver noise)."""
    if len(a) != len(b) or len(a) < 2 or np.allclose(a, b, rtol=0, atol=1e-4):
        return None
    p = float(ttest_rel(a, b).pvalue)
    return None if math.isnan(p) else p


def summarise(result: ExperimentResult, dataset: str) -> dict[str, Any]:
    """The `summary.json` document (schema in the issue / README), plus per-split details."""
    task = result.config.task
    metric = MAIN_METRIC[task]
    by_strategy: dict[str, list] = {}
    for run in result.runs:  # result.runs is in (split, run, strategy) order: paired across strategies
        by_strategy.setdefault(run.strategy, []).append(run)
    full = [scores[metric] for scores in result.full_pool.values()]
    out: dict[str, Any] = {
        "dataset": dataset,
        "task": task,
        "metric": metric,
        "full_pool_score": float(np.mean(full)) if full else None,
        "full_pool_by_split": {k: v[metric] for k, v in result.full_pool.items()},
        "strategies": {},
    }
    stats: dict[str, dict[str, Any]] = {}
    for name, runs in by_strategy.items():
        lab, sc = _aligned([(np.array(r.curve.labels), r.curve.metric(metric)) for r in runs])
        labels = np.rint(lab.mean(axis=0)).astype(int)
        stats[name] = {
            "labels": labels.tolist(),
            "mean": sc.mean(axis=0).tolist(),
            "std": sc.std(axis=0).tolist(),
            "final": sc[:, -1].tolist(),
            "aulc_runs": [aulc(lab[i], sc[i]) for i in range(len(sc))],
            "runs": [{"split": r.split, "run": r.run} for r in runs],
            "stopped": dict(Counter(r.curve.stopped for r in runs)),
        }
        for other in ("f1", "accuracy", "rmse"):
            if other in runs[0].curve.scores[0]:
                _, osc = _aligned([(np.array(r.curve.labels), r.curve.metric(other)) for r in runs])
                stats[name][f"mean_{other}"] = osc.mean(axis=0).tolist()
    random = stats.get("random")
    best_random = float(np.max(random["mean"])) if random else None
    for name, st in stats.items():
        st["aulc"] = float(np.mean(st["aulc_runs"]))
        if random is None:
            st["labels_to_passive_best"] = None
        else:
            reach = [n for n, m in zip(st["labels"], st["mean"], strict=True) if m >= best_random - 1e-12]
            st["labels_to_passive_best"] = int(reach[0]) if reach else None
        st["p_value_vs_random"] = (
            None
            if random is None or name == "random"
            else _p_value(np.array(st["aulc_runs"]), np.array(random["aulc_runs"]))
        )
        out["strategies"][name] = st
    if random is not None:
        out["random_best"] = {
            "score": best_random,
            "labels": int(random["labels"][int(np.argmax(random["mean"]))]),
        }
    return out
