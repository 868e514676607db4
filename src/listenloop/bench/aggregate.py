"""`listenloop bench aggregate`: each aggregator's accuracy and fit time beside crowd-kit's same method.

Protocol: for every crowd set (a folder holding `answers.csv` and `truth.csv`), each method
aggregates the whole answers table once per repeat; the time is the median wall time of
`fit_predict` alone (reading the CSV is outside it, and both sides get the same in-memory
table), and the accuracy counts items of `truth.csv` with no prediction as wrong. crowd-kit's
methods run in the same process, interleaved with ours, with the settings its documentation
uses: `DawidSkene(n_iter=100)` and defaults elsewhere. Our `trust` (votes weighted by the
trustability of control questions) has no exact crowd-kit twin; its peer is `Wawa` (votes
weighted by agreement with the majority), the nearest weighted vote crowd-kit has.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from listenloop.crowd.answers import read_answers
from listenloop.errors import ListenloopError
from listenloop.sim.crowd_policies import read_truth

METHODS: tuple[str, ...] = ("mv", "trust", "ds", "mace", "glad")
PEER_NAMES = {"mv": "MajorityVote", "trust": "Wawa", "ds": "DawidSkene", "mace": "MACE", "glad": "GLAD"}


@dataclass
class AggregateRow:
    """One method on one crowd set, for one side (listenloop or crowd-kit)."""

    dataset: str
    method: str
    side: str
    accuracy: float | None
    fit_s: float | None
    note: str = ""


def find_sets(root: Path) -> list[Path]:
    """`root` itself if it holds answers.csv and truth.csv, else its sub-folders that do (sorted)."""
    root = Path(root)
    if not root.is_dir():
        raise ListenloopError(f"{root}: no such folder")
    if (root / "answers.csv").is_file() and (root / "truth.csv").is_file():
        return [root]
    sets = sorted(p for p in root.iterdir() if (p / "answers.csv").is_file() and (p / "truth.csv").is_file())
    if not sets:
        raise ListenloopError(f"{root}: no folder with answers.csv and truth.csv in it")
    return sets


def _ours(method: str) -> Callable[[pd.DataFrame], pd.Series]:
    from listenloop.crowd.aggregation.registry import make_aggregator

    return lambda answers: make_aggregator(method).fit_predict(answers)


def _peer(method: str) -> Callable[[pd.DataFrame], pd.Series]:
    """crowd-kit's same method over its `task, worker, label` table (the renaming is done beforehand)."""
    from crowdkit import aggregation as ck

    makers: dict[str, Callable[[], Any]] = {
        "mv": ck.MajorityVote,
        "trust": ck.Wawa,
        "ds": lambda: ck.DawidSkene(n_iter=100),
        "mace": ck.MACE,
        "glad": ck.GLAD,
    }
    make = makers[method]
    return lambda answers: make().fit_predict(answers)


def _accuracy(pred: pd.Series, truth: dict[str, str]) -> float:
    got = {str(k): str(v) for k, v in pred.items()}
    return sum(got.get(item) == label for item, label in truth.items()) / len(truth)


def _time(fn: Callable[[], pd.Series]) -> tuple[pd.Series, float]:
    t0 = time.perf_counter()
    pred = fn()
    return pred, time.perf_counter() - t0


def run_aggregate_bench(
    root: Path,
    methods: tuple[str, ...] = METHODS,
    repeats: int = 1,
    peer: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[AggregateRow]:
    """Rows for every set under `root`, every method, ours and (if `peer`) crowd-kit's."""
    if peer:
        try:
            import crowdkit.aggregation  # noqa: F401
        except ImportError:
            raise ListenloopError(
                "bench aggregate compares with crowd-kit, which is not installed: "
                "pip install 'listenloop[bench]' (or pass --no-peer)"
            ) from None
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ListenloopError(f"unknown method(s) {', '.join(unknown)} (known: {', '.join(METHODS)})")
    rows: list[AggregateRow] = []
    for folder in find_sets(root):
        answers = read_answers(folder / "answers.csv")[["item", "worker", "label"]]
        truth = read_truth(folder / "truth.csv")
        peer_answers = answers.rename(columns={"item": "task"})
        for method in methods:
            sides: list[tuple[str, Callable[[], pd.Series]]] = [
                ("listenloop", partial(_ours(method), answers))
            ]
            if peer:
                sides.append(("crowd-kit", partial(_peer(method), peer_answers)))
            times: dict[str, list[float]] = {side: [] for side, _ in sides}
            preds: dict[str, pd.Series | None] = {}
            notes: dict[str, str] = {side: "" for side, _ in sides}
            for _ in range(max(1, repeats)):  # interleaved, so load from elsewhere hits both sides alike
                for side, fn in sides:
                    if notes[side]:
                        continue
                    try:
                        preds[side], dt = _time(fn)
                    except Exception as exc:  # a peer's failure is reported, not fatal
                        if side == "listenloop":
                            raise
                        first = str(exc).splitlines()[0][:80] if str(exc) else ""
                        notes[side] = f"{type(exc).__name__}: {first}"
                        preds[side] = None
                        continue
                    times[side].append(dt)
            for side, _ in sides:
                pred = preds.get(side)
                label = PEER_NAMES[method] if side == "crowd-kit" else method
                row = AggregateRow(
                    dataset=folder.name,
                    method=label,
                    side=side,
                    accuracy=None if pred is None else round(_accuracy(pred, truth), 4),
                    fit_s=round(statistics.median(times[side]), 3) if times[side] else None,
                    note=notes[side],
                )
                rows.append(row)
                if progress is not None:
                    progress(format_row(row))
    return rows


def format_row(row: AggregateRow) -> str:
    acc = "failed" if row.accuracy is None else f"{row.accuracy:.4f}"
    fit = "-" if row.fit_s is None else f"{row.fit_s:.3f} s"
    line = f"{row.dataset:<12} {row.side:<10} {row.method:<13} accuracy {acc:<7} fit {fit:<10} {row.note}"
    return line.rstrip()


def format_table(rows: list[AggregateRow]) -> str:
    """Per set and method: both sides' accuracy and time, and our speed-up (crowd-kit time / ours)."""
    lines = [f"{'set':<12} {'method':<6} {'listenloop':>22} {'crowd-kit':>24} {'speed-up':>9}"]
    ours = [r for r in rows if r.side == "listenloop"]
    peers = {(r.dataset, r.method): r for r in rows if r.side == "crowd-kit"}
    for r in ours:
        p = peers.get((r.dataset, PEER_NAMES[r.method]))
        mine = f"{r.accuracy:.4f} in {r.fit_s:.2f} s"
        if p is None:
            theirs, ratio = "-", "-"
        elif p.accuracy is None:
            theirs, ratio = f"{p.method} failed", "-"
        else:
            theirs = f"{p.accuracy:.4f} in {p.fit_s:.2f} s"
            ratio = f"{p.fit_s / r.fit_s:.1f}x" if r.fit_s else "-"
        lines.append(f"{r.dataset:<12} {r.method:<6} {mine:>22} {theirs:>24} {ratio:>9}")
    return "\n".join(lines)


def rows_as_dicts(rows: list[AggregateRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def plot_aggregate(rows: list[AggregateRow], path: Path) -> None:
    """Accuracy (bars) per set and method, both sides side by side, fit time written on each bar."""
    import numpy as np

    from listenloop.sim.plots import _finish, plt  # importing plots selects the Agg backend first

    sets = sorted({r.dataset for r in rows})
    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 4), squeeze=False)
    for ax, name in zip(axes[0], sets, strict=True):
        ours = [r for r in rows if r.dataset == name and r.side == "listenloop"]
        peers = {r.method: r for r in rows if r.dataset == name and r.side == "crowd-kit"}
        x = np.arange(len(ours))
        for offset, side_rows, label in (
            (-0.2, ours, "listenloop"),
            (0.2, [peers.get(PEER_NAMES[r.method]) for r in ours], "crowd-kit"),
        ):
            acc = [np.nan if r is None or r.accuracy is None else r.accuracy for r in side_rows]
            if all(np.isnan(acc)):
                continue
            bars = ax.bar(x + offset, acc, width=0.4, label=label)
            for bar, r in zip(bars, side_rows, strict=True):
                if r is not None and r.fit_s is not None:
                    ax.annotate(
                        f"{r.fit_s:.2g}s" if r.fit_s < 10 else f"{r.fit_s:.0f}s",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
        ax.set_xticks(x, [r.method for r in ours])
        finite = [r.accuracy for r in rows if r.dataset == name and r.accuracy is not None]
        ax.set_ylim(max(0.0, min(finite) - 0.05) if finite else 0.0, 1.0)
        ax.set_title(name)
        ax.set_ylabel("accuracy against truth")
        ax.grid(alpha=0.3)
    _finish(fig, axes[0][-1], path)
