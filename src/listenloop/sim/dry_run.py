"""A dry run: `listenloop simulate` on a project's own labelled clips, before any answer is paid for.

The plan imitates the project's live loop on the labels it has: its feature set, learner and
strategy (beside the other strategies the platform runs), the platform's cold start (`kmeans`,
no random warm-up), a batch of about `retrain_every` labels, stratified folds. The result is the
summary's per-strategy figures and the verdict (`sim.verdict`). `command` is the equivalent
`listenloop simulate` line, which gives the same verdict on the same labels.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from listenloop.errors import ListenloopError

if TYPE_CHECKING:  # the server imports this module to check labels: no scikit-learn there
    from listenloop.sim.experiment import ExperimentConfig

#: Strategies every dry run compares (those a project can run), besides the project's own.
DRY_RUN_STRATEGIES = ("random", "margin", "least_confidence", "entropy", "margin_diverse", "medium_certainty")
MIN_LABELS = 20  # fewer labelled clips: no dry run (a 4xx), there is nothing to simulate
MIN_PER_CLASS = 2  # each class needs clips on both sides of a fold
MAX_FOLDS = 5
MAX_ITERATIONS = 20
MIN_PAIRS = 6  # (fold, run) pairs: enough for an 80 % bootstrap interval
DRY_RUN_TASKS = ("classification", "binary")


@dataclass
class DryRunPlan:
    """The simulation a dry run runs (`command` spells it as a `listenloop simulate` line)."""

    strategies: list[str]
    features: str
    learner: str | None
    folds: int
    runs: int
    initial: int
    batch: int
    iterations: int
    seed: int = 0
    cold_start: str = "kmeans"
    warmup: int = 0

    def experiment(self) -> ExperimentConfig:
        """The experiment's configuration."""
        from listenloop.sim.experiment import ExperimentConfig
        from listenloop.sim.loop import LoopConfig

        loop = LoopConfig(
            initial=self.initial,
            batch=self.batch,
            iterations=self.iterations,
            warmup=self.warmup,
            cold_start=self.cold_start,
        )
        return ExperimentConfig(
            strategies=list(self.strategies), learner=self.learner, runs=self.runs, seed=self.seed, loop=loop
        )

    def command(self, dataset: str = "DATASET") -> str:
        """The `listenloop simulate` line that runs the same simulation and prints the same verdict."""
        args = ["listenloop", "simulate", dataset, "--out", "OUT", "--features", self.features]
        if self.learner:
            args += ["--learner", self.learner]
        args += ["--strategies", ",".join(self.strategies), "--folds", str(self.folds)]
        args += ["--runs", str(self.runs), "--initial", str(self.initial), "--batch", str(self.batch)]
        args += ["--iterations", str(self.iterations), "--seed", str(self.seed), "--warmup", str(self.warmup)]
        args += ["--cold-start", self.cold_start, "--recommend"]
        return shlex.join(args)


def check_labels(labels: Any, task_type: str) -> tuple[np.ndarray, np.ndarray]:
    """The classes and their counts, or ListenloopError saying why these labels allow no dry run."""
    if task_type not in DRY_RUN_TASKS:
        raise ListenloopError(f"a dry run needs a classification or binary project, not {task_type}")
    labels = np.asarray(labels).astype(str)
    n = len(labels)
    names, counts = np.unique(labels, return_counts=True)
    if n < MIN_LABELS:
        raise ListenloopError(
            f"a dry run needs at least {MIN_LABELS} labelled clips; this project has {n}: "
            "upload clips with labels first"
        )
    if len(names) < 2:
        raise ListenloopError("a dry run needs labelled clips of at least two classes")
    if counts.min() < MIN_PER_CLASS:
        rare = ", ".join(str(k) for k, c in zip(names, counts, strict=True) if c < MIN_PER_CLASS)
        raise ListenloopError(
            f"a dry run needs at least {MIN_PER_CLASS} labelled clips of each class; too few of {rare}"
        )
    return names, counts


def plan_dry_run(
    labels: np.ndarray,
    *,
    task_type: str,
    strategy: str,
    learner: str | None,
    features: str,
    retrain_every: int,
    classes: int | None = None,
) -> DryRunPlan:
    """The plan for `labels` (one per labelled clip), or ListenloopError saying why there is none."""
    from listenloop.strategies.registry import DEEP_STRATEGIES, strategy_problem

    names, counts = check_labels(labels, task_type)
    n = int(counts.sum())
    folds = int(min(MAX_FOLDS, counts.min()))
    pool = n - math.ceil(n / folds)  # training clips per fold
    batch = int(max(2, min(max(1, retrain_every), pool // 10)))
    initial = int(min(max(batch, len(names)), pool - batch))
    iterations = int(max(1, min(MAX_ITERATIONS, (pool - initial) // batch)))
    wanted = [*DRY_RUN_STRATEGIES, strategy]
    usable = [
        s
        for s in dict.fromkeys(wanted)
        if s not in DEEP_STRATEGIES and strategy_problem(s, "classification", classes, platform=True) is None
    ]
    return DryRunPlan(
        strategies=usable,
        features=features,
        learner=learner,
        folds=folds,
        runs=max(1, math.ceil(MIN_PAIRS / folds)),
        initial=initial,
        batch=batch,
        iterations=iterations,
    )


def run_dry_run(
    X: Any, labels: np.ndarray, plan: DryRunPlan, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Simulate `plan` on the features `X` (one row per labelled clip, in clip order) and `labels`;
    `progress(done, total)` after each (fold, run) pair. Returns the result document."""
    from listenloop.sim.experiment import run_experiment
    from listenloop.sim.splits import make_splits
    from listenloop.sim.summary import summarise
    from listenloop.sim.verdict import verdict

    labels = np.asarray(labels).astype(str)
    splits = make_splits(labels, None, "classification", folds=plan.folds, seed=plan.seed)
    if progress is not None:
        progress(0, len(splits) * plan.runs)
    result = run_experiment(X, labels, splits, plan.experiment(), progress=False, jobs=1, on_pair=progress)
    summary = summarise(result, "dry run")
    found = verdict(result, len(labels))
    keep = ("labels", "mean", "ci80_low", "ci80_high", "aulc", "labels_to_passive_best", "p_value_vs_random")
    return {
        "plan": asdict(plan),
        "command": plan.command(),
        "metric": summary["metric"],
        "full_pool_score": summary["full_pool_score"],
        "curves": {k: {f: v[f] for f in keep} for k, v in summary["strategies"].items()},
        "verdict": found,
    }
