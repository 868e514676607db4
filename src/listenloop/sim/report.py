"""`report.md`: the simulation's result in words and one table, for people deciding whether AL pays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def write_report(
    summary: dict[str, Any], path: str | Path, *, command: str = "", details: dict[str, Any] | None = None
) -> Path:
    """Write the markdown report of `summary` next to its plot."""
    st = summary["strategies"]
    metric = summary["metric"].upper()
    rb = summary.get("random_best")
    n_runs = len(next(iter(st.values()))["final"])
    lines = [f"# Active-learning simulation: {Path(summary['dataset']).name}", ""]
    if command:
        lines += ["```", command, "```", ""]
    for key, value in (details or {}).items():
        lines.append(f"- {key}: {value}")
    lines += [
        f"- task: {summary['task']}, metric: {metric}, {n_runs} paired runs (split × run)",
        f"- learner on the whole training pool: {metric} {summary['full_pool_score']:.3f}",
    ]
    if "aulc_range" in summary:
        lo, hi = summary["aulc_range"]
        lines.append(f"- AULC: mean {metric} over {lo} to {hi} labels, the range every strategy covers")
    if summary.get("test"):
        lines.append(f"- p-values: {summary['test']['caveat']}")
    if rb:
        lines.append(f"- random sampling's best mean {metric}: {rb['score']:.3f} at {rb['labels']} labels")
    lines += [
        "",
        "| strategy | final " + metric + " (mean ± std) | AULC (mean ± std) | labels to random's best "
        "| share of random's labels | p (AULC vs random, corrected resampled t) |",
        "|---|---|---|---|---|---|",
    ]
    ranked = sorted(st.items(), key=lambda kv: -kv[1]["aulc"])
    for name, s in ranked:
        final = np.asarray(s["final"])
        runs = np.asarray(s["aulc_runs"])
        need = s["labels_to_passive_best"]
        share = f"{need / rb['labels']:.0%}" if (need is not None and rb) else "–"
        lines.append(
            f"| {name} | {final.mean():.3f} ± {final.std():.3f} | {runs.mean():.4f} ± {runs.std():.4f} "
            f"| {need if need is not None else 'not reached'} | {share} | {_fmt_p(s['p_value_vs_random'])} |"
        )
    best = next((kv for kv in ranked if kv[0] != "random"), None)
    lines.append("")
    if best and "random" in st:
        name, s = best
        p = s["p_value_vs_random"]
        gain = s["aulc"] - st["random"]["aulc"]
        if gain > 0 and p is not None and p < 0.05:
            verdict = "beats random sampling"
        elif gain <= 0:
            verdict = "does no better than random sampling"
        else:
            verdict = "is ahead of random sampling, but not significantly"
        lines.append(
            f"**Verdict:** the active-learning strategy with the largest area under the curve, {name}, "
            f"{verdict} (AULC {gain:+.4f} against random, p {_fmt_p(p)}). "
            "Active learning does not always pay: check this on your own data before spending."
        )
    short = {name: s["stopped"].get("pool", 0) for name, s in st.items() if s.get("stopped", {}).get("pool")}
    if short:
        lines.append(
            "\n**Note:** the pool ran out before the last iteration in "
            + ", ".join(f"{n} runs of {name}" for name, n in short.items())
            + ": those curves end early (carried forward)."
        )
    lines += ["", "![learning curves](learning_curve.png)", ""]
    path = Path(path)
    path.write_text("\n".join(lines))
    return path
