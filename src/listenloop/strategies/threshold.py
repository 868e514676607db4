"""Least confidence around a decision threshold Td, fixed or tuned each iteration (002_)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from listenloop.errors import ListenloopError
from listenloop.strategies.base import QueryContext
from listenloop.strategies.selection import top_k
from listenloop.strategies.uncertainty import threshold_closeness


def tune_threshold(p_positive: np.ndarray, y_binary: np.ndarray, grid: np.ndarray | None = None) -> float:
    """The Td that maximises unweighted average recall of `p >= Td` on a validation split.

    Ties go to the threshold closest to 0.5, so an uninformative split keeps the default.
    """
    grid = np.linspace(0.05, 0.95, 91) if grid is None else grid
    y_binary = np.asarray(y_binary).astype(int)
    scores = np.array([balanced_accuracy_score(y_binary, (p_positive >= t).astype(int)) for t in grid])
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(grid[best[np.argmin(np.abs(grid[best] - 0.5))]])


@dataclass
class ThresholdLeastConfidence:
    """Queries clips whose positive-class probability is closest to Td (binary tasks).

    `tuned=False` keeps Td = 0.5 (equal to least confidence); `tuned=True` re-tunes Td
    every iteration on out-of-fold predictions over the labelled set (`folds`-fold
    stratified validation splits), so no labels beyond the labelled set are needed.
    """

    tuned: bool = True
    threshold: float = 0.5
    folds: int = 3
    name: str = "least_confidence_tuned"

    def current_threshold(self, ctx: QueryContext) -> float:
        """Td for this iteration: fixed, or tuned on validation splits of the labelled set."""
        classes = np.unique(ctx.y_labelled)
        if not self.tuned or len(classes) < 2:
            return self.threshold
        counts = np.unique(ctx.y_labelled, return_counts=True)[1]
        k = int(min(self.folds, counts.min()))
        if k < 2:
            return self.threshold
        cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=int(ctx.rng.integers(2**31)))
        proba = cross_val_predict(
            clone(ctx.model), ctx.X_labelled, ctx.y_labelled, cv=cv, method="predict_proba"
        )
        positive = classes[-1]
        return tune_threshold(proba[:, -1], ctx.y_labelled == positive)

    def select(self, ctx: QueryContext, n: int) -> np.ndarray:
        """Top-n closest to the current Td."""
        if len(getattr(ctx.model, "classes_", [])) > 2:
            raise ListenloopError(f"{self.name} needs a binary task (use --positive CLASS,... to make one)")
        td = self.current_threshold(ctx)
        ctx.extra["threshold"] = td
        proba = ctx.proba()
        p_pos = proba[:, -1] if proba.shape[1] > 1 else np.zeros(len(proba))
        return ctx.candidates[top_k(threshold_closeness(p_pos, td), n)]
