"""From curves to `summary.json`: mean ± std curves, areas under them, labels needed, p-values.

Areas (AULC) are taken over the label range that every strategy covers (contracts.md), so a
strategy that stopped early or asked nothing in some iterations is compared on the same
range as the others. p-values against random come from the corrected resampled t-test
(Nadeau and Bengio 2003): the (fold, run) pairs share training clips (folds overlap, runs of
one fold share its pool and test set), so a plain paired t-test understates the variance.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
from scipy.stats import t as student_t
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
    "ci80_low",
    "ci80_high",
)


TEST_NAME = "corrected resampled t-test (Nadeau and Bengio 2003)"
CAVEAT = (
    "the paired runs share data (folds overlap in training clips; runs of one split share its pool "
    "and test set), so a plain paired t-test is too optimistic; p-values here use the {test} "
    "with a test/train ratio of {ratio:.3f}"
)


def aulc(labels: np.ndarray, scores: np.ndarray, lo: float | None = None, hi: float | None = None) -> float:
    """Area under a learning curve over the label range [lo, hi], divided by its width: the
    curve's mean height there (default: the curve's own range).

    The curve is piecewise linear between its points and flat beyond its ends (a run that
    stopped early keeps its last score, as the mean curves carry it forward).
    """
    labels, scores = np.asarray(labels, float), np.asarray(scores, float)
    if len(labels) == 0:
        return float("nan")
    # one point per labelled-set size: a step that asked nothing keeps the newest score
    last = len(labels) - 1 - np.unique(labels[::-1], return_index=True)[1]
    labels, scores = labels[last], scores[last]
    lo = labels[0] if lo is None else float(lo)
    hi = labels[-1] if hi is None else float(hi)
    if hi <= lo:
        return float(np.interp(lo, labels, scores))
    inside = labels[(labels > lo) & (labels < hi)]
    xs = np.concatenate([[lo], inside, [hi]])
    return float(np.trapezoid(np.interp(xs, labels, scores), xs) / (hi - lo))


def shared_range(curves: dict[str, list[int]]) -> tuple[float, float]:
    """The label range every strategy's curve covers: the largest first size to the smallest last."""
    return max(lab[0] for lab in curves.values()), min(lab[-1] for lab in curves.values())


def corrected_resampled_t(a: np.ndarray, b: np.ndarray, test_train_ratio: float) -> float | None:
    """Two-sided p of the corrected resampled t-test (Nadeau and Bengio 2003) on paired scores.

    t = mean(d) / sqrt((1/J + n_test/n_train) * var(d)), J - 1 degrees of freedom, d = a - b over
    the J resamples. None for unpaired input, one pair, or areas equal within 1e-4 (solver noise).
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) != len(b) or len(a) < 2 or np.allclose(a, b, rtol=0, atol=1e-4):
        return None
    d = a - b
    j = len(d)
    var = float(np.var(d, ddof=1))
    if var == 0:
        return 0.0 if d.mean() != 0 else None
    t = float(d.mean()) / math.sqrt((1.0 / j + test_train_ratio) * var)
    return float(2 * student_t.sf(abs(t), j - 1))


def bootstrap_ci(scores: np.ndarray, level: float = 0.8, resamples: int = 2000, seed: int = 0) -> tuple:
    """Percentile bootstrap interval of the mean curve (003_ section 5.1: 80 % intervals).

    `scores` is runs × steps (every (fold, run) pair one experiment); the runs are resampled
    with replacement `resamples` times. Returns (low, high) lists, one value per step.
    """
    sc = np.asarray(scores, float)
    rng = np.random.default_rng(seed)
    means = sc[rng.integers(len(sc), size=(resamples, len(sc)))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    return low.tolist(), high.tolist()


def _aligned(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Curves of one strategy on a common label axis: the first run's sizes when all runs asked the
    same, otherwise the mean size per step (runs stopped early are carried forward)."""
    length = max(len(lab) for lab, _ in curves)
    lab = np.array([np.pad(lb, (0, length - len(lb)), mode="edge") for lb, _ in curves], float)
    sc = np.array([np.pad(s, (0, length - len(s)), mode="edge") for _, s in curves], float)
    return lab, sc


def _p_value(a: np.ndarray, b: np.ndarray) -> float | None:
    """Plain paired t-test p (kept beside the corrected one for comparison); None for unpaired
    runs, one run, or areas equal within 1e-4 (solver noise)."""
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
            **dict(zip(("ci80_low", "ci80_high"), bootstrap_ci(sc), strict=True)),
            "_curves": (lab, sc),
            "runs": [{"split": r.split, "run": r.run} for r in runs],
            "stopped": dict(Counter(r.curve.stopped for r in runs)),
        }
        shares = source_shares(runs)
        if shares is not None:
            stats[name]["sources"] = shares
        for other in ("f1", "accuracy", "rmse"):
            if other in runs[0].curve.scores[0]:
                _, osc = _aligned([(np.array(r.curve.labels), r.curve.metric(other)) for r in runs])
                stats[name][f"mean_{other}"] = osc.mean(axis=0).tolist()
    lo, hi = shared_range({name: st["labels"] for name, st in stats.items()}) if stats else (0, 0)
    out["aulc_range"] = [int(lo), int(hi)]
    ratio = split_ratio(result)
    caveat = CAVEAT.format(test=TEST_NAME, ratio=ratio)
    out["test"] = {"name": TEST_NAME, "test_train_ratio": ratio, "caveat": caveat}
    for st in stats.values():
        lab, sc = st.pop("_curves")
        st["aulc_runs"] = [aulc(lab[i], sc[i], lo, hi) for i in range(len(sc))]
    random = stats.get("random")
    best_random = float(np.max(random["mean"])) if random else None
    for name, st in stats.items():
        st["aulc"] = float(np.mean(st["aulc_runs"]))
        if random is None:
            st["labels_to_passive_best"] = None
        else:
            reach = [n for n, m in zip(st["labels"], st["mean"], strict=True) if m >= best_random - 1e-12]
            st["labels_to_passive_best"] = int(reach[0]) if reach else None
        st["p_value_vs_random"] = st["p_value_paired_t"] = None
        if random is not None and name != "random":
            runs, base = np.array(st["aulc_runs"]), np.array(random["aulc_runs"])
            st["p_value_vs_random"] = corrected_resampled_t(runs, base, ratio)
            st["p_value_paired_t"] = _p_value(runs, base)
        out["strategies"][name] = st
    if random is not None:
        out["random_best"] = {
            "score": best_random,
            "labels": int(random["labels"][int(np.argmax(random["mean"]))]),
        }
    return out


def source_shares(runs: list) -> dict[str, Any] | None:
    """Which source supplied each iteration's clips (`auto`: its arms and the random share), as
    shares of the iteration's batch averaged over runs; None for a strategy that logs no sources.

    An iteration without a log (the shared random warm-up) counts as `warmup`. `labels` is the
    mean labelled-set size after each iteration.
    """
    if not any("auto_sources" in note for r in runs for note in r.curve.notes):
        return None
    steps = max(len(r.curve.notes) for r in runs)
    names: list[str] = []
    for r in runs:
        for note in r.curve.notes:
            names.extend(k for k in note.get("auto_sources", {}) if k not in names)
    names.append("warmup")
    table = np.zeros((steps, len(names)))
    seen = np.zeros(steps)
    labels = np.zeros(steps)
    for r in runs:
        for i, note in enumerate(r.curve.notes):
            counts = note.get("auto_sources")
            row = np.zeros(len(names))
            if counts is None:
                row[-1] = 1.0
            else:
                for k, v in counts.items():
                    row[names.index(k)] = v
            total = row.sum()
            if total > 0:
                table[i] += row / total
                seen[i] += 1
                labels[i] += r.curve.labels[i + 1] if i + 1 < len(r.curve.labels) else r.curve.labels[-1]
    keep = seen > 0
    table, labels = table[keep] / seen[keep, None], labels[keep] / seen[keep]
    return {
        "labels": np.rint(labels).astype(int).tolist(),
        "shares": {k: table[:, j].round(4).tolist() for j, k in enumerate(names) if table[:, j].any()},
    }


def split_ratio(result: ExperimentResult) -> float:
    """n_test / n_train of the corrected test: the mean over splits of test clips over pool
    (training) clips; 1/(K-1) for K equal folds. Without sizes, that of 5 folds."""
    sizes = [(n_test / n_train) for n_train, n_test in result.split_sizes.values() if n_train]
    return float(np.mean(sizes)) if sizes else 0.25
