"""What one active-learning round trains on: the labels, plus a semi-supervised strategy's
pseudo-labels. The one rule of every path: the simulation's loop (`sim/loop.py`) and the
live loop's rounds (`engine/learning/retrain.py`) both fit through `fit_round`.

Semi-supervised AL (002_, SSAL): "the model updates twice per iteration, first with active
learning, then SSL": it is fitted on the labels, predicts the unlabelled candidates, and the
predictions above T_SSL (balanced across the predicted classes) join a second fit as
pseudo-labels. Pseudo-labels are recomputed every round and never become labels: they are
not counted as labels, stored as labels or exported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from listenloop.strategies.base import QueryContext


@dataclass
class RoundFit:
    """The round's model, and the rows it was also fitted on with a pseudo-label (none for a
    strategy without pseudo-labels)."""

    model: Any
    pseudo_rows: np.ndarray
    pseudo_labels: np.ndarray


def fit_rows(
    make_model: Callable[[], Any],
    X: np.ndarray,
    rows: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
) -> Any:
    """A fresh model fitted on `X[rows]`, `y` (with `sample_weight` only when `weights` is given)."""
    model = make_model()
    Xl = np.asarray(X[rows])
    if weights is None:
        return model.fit(Xl, y)
    return model.fit(Xl, y, sample_weight=weights)


def fit_round(
    make_model: Callable[[], Any],
    X: np.ndarray,
    labelled: np.ndarray,
    y: np.ndarray,
    candidates: np.ndarray,
    strategy: Any,
    *,
    iteration: int,
    rng: np.random.Generator,
    task: str = "classification",
    pseudo_weight: float = 1.0,
) -> RoundFit:
    """Fit on the labelled rows; for a strategy with `pseudo_labels` (self_training), fit again
    with its confident predictions over the unlabelled `candidates` as pseudo-labels, each of
    weight `pseudo_weight` (002_). A strategy that trains its own model (DAL: `fit_round`)
    fits it itself."""
    if hasattr(strategy, "fit_round"):
        return strategy.fit_round(
            make_model, X, labelled, np.asarray(y), candidates, iteration=iteration, rng=rng, task=task
        )
    labelled = np.asarray(labelled, dtype=np.int64)
    y = np.asarray(y)
    model = fit_rows(make_model, X, labelled, y)
    none = RoundFit(model, np.empty(0, dtype=np.int64), y[:0])
    candidates = np.asarray(candidates, dtype=np.int64)
    if not hasattr(strategy, "pseudo_labels") or len(candidates) == 0:
        return none
    ctx = QueryContext(
        model=model,
        X=X,
        candidates=candidates,
        labelled=labelled,
        y_labelled=y,
        iteration=iteration,
        rng=rng,
        task=task,
    )
    rows, labels = strategy.pseudo_labels(ctx, exclude=np.empty(0, dtype=np.int64))
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return none
    weights = np.concatenate([np.ones(len(labelled)), np.full(len(rows), float(pseudo_weight))])
    both = np.concatenate([labelled, rows])
    model = fit_rows(make_model, X, both, np.concatenate([y, np.asarray(labels, dtype=y.dtype)]), weights)
    return RoundFit(model, rows, np.asarray(labels))
