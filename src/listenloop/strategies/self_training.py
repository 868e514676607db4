"""Semi-supervised AL (002_): least confidence for the humans, confident predictions as pseudo-labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from listenloop.strategies.base import QueryContext
from listenloop.strategies.scoring import query_top


def balanced_pseudo_labels(
    proba: np.ndarray,
    classes: np.ndarray,
    threshold: float,
    exclude: np.ndarray | None = None,
    max_total: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Clips predicted above `threshold`, balanced across the predicted classes.

    Each class that has candidates contributes as many as the scarcest such class, its
    most confident ones first (the model leans to its majority class; 002_ balanced
    positives and negatives for that reason), and at most `max_total` in all (a pool of a
    million would otherwise hand the fit hundreds of thousands). Returns (positions, labels).
    """
    conf = proba.max(axis=1)
    pred = np.argmax(proba, axis=1)
    ok = conf > threshold
    if exclude is not None and len(exclude):
        ok[exclude] = False
    per_class = [np.flatnonzero(ok & (pred == c)) for c in range(proba.shape[1])]
    present = [rows for rows in per_class if len(rows)]
    if len(present) < min(2, proba.shape[1]):
        return np.empty(0, dtype=np.int64), classes[:0]
    cap = min(len(rows) for rows in present)
    if max_total is not None:
        cap = min(cap, max_total // len(present))
    picked = [rows[np.argsort(-conf[rows], kind="stable")[:cap]] for rows in present]
    idx = np.concatenate(picked).astype(np.int64)
    return idx, classes[pred[idx]]


@dataclass
class SelfTraining:
    """Least-confidence queries; afterwards predictions above T_SSL join training as pseudo-labels."""

    threshold: float = 0.95
    weight: float = 1.0
    measure: str = "least_confidence"
    name: str = "self_training"

    def select(self, ctx: QueryContext, n: int) -> np.ndarray:
        """The human batch: top-n by least confidence."""
        return query_top(ctx.model, ctx.X, self.measure, n, subset=ctx.candidates)

    def pseudo_labels(self, ctx: QueryContext, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Balanced confident predictions over the candidates (rows, labels), except rows `exclude`."""
        skip = np.flatnonzero(np.isin(ctx.candidates, exclude))
        pos, labels = balanced_pseudo_labels(ctx.proba(), ctx.model.classes_, self.threshold, skip)
        return ctx.candidates[pos], labels
