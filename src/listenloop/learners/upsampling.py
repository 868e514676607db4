"""Upsampling the labelled set to an even class distribution (000_, Table 1 step 1)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone


def upsample_indices(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices that repeat minority-class rows (drawn at random) up to the largest class's count."""
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    target = counts.max()
    parts = []
    for cls, count in zip(classes, counts, strict=True):
        rows = np.flatnonzero(y == cls)
        extra = rng.choice(rows, size=target - count, replace=True) if count < target else rows[:0]
        parts.append(np.concatenate([rows, extra]))
    return np.sort(np.concatenate(parts))


class Upsampled(ClassifierMixin, BaseEstimator):
    """Wraps a classifier so that it is fitted on a class-balanced, upsampled labelled set."""

    def __init__(self, estimator: BaseEstimator, random_state: int | None = 0) -> None:
        self.estimator = estimator
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> Upsampled:
        """Fit a clone of `estimator` on the upsampled rows (their sample weights follow them)."""
        idx = upsample_indices(y, np.random.default_rng(self.random_state))
        X = np.asarray(X)
        self.estimator_ = clone(self.estimator)
        kwargs = {} if sample_weight is None else {"sample_weight": np.asarray(sample_weight)[idx]}
        self.estimator_.fit(X[idx], np.asarray(y)[idx], **kwargs)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The wrapped classifier's probabilities."""
        return self.estimator_.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The wrapped classifier's predictions."""
        return self.estimator_.predict(X)
