"""The binary classifier behind AL for continuous labels (001_, eqs. 1-2).

A continuous target is turned into a binary one by its side of a centre (eq. 1); an
SVM with Platt scaling then gives the binary-classification confidence (eq. 2).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from listenloop.learners.svm import SVMClassifier


class SignClassifier(ClassifierMixin, BaseEstimator):
    """Classifies whether a continuous target lies above `centre`; `predict_proba[:, 1]` = P(above).

    `centre=None` takes the median of the labelled targets, so the binary task stays
    balanced whatever the label's scale (the paper's 0 suits labels in [-1, 1]).
    """

    def __init__(
        self, centre: float | None = None, kernel: str = "rbf", C: float = 1.0, random_state: int | None = 0
    ) -> None:
        self.centre = centre
        self.kernel = kernel
        self.C = C
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> SignClassifier:
        """Binarise y around the centre (1 above, 0 at or below) and fit the SVM."""
        y = np.asarray(y, dtype=float)
        self.centre_ = float(np.median(y)) if self.centre is None else float(self.centre)
        self.svm_ = SVMClassifier(kernel=self.kernel, C=self.C, random_state=self.random_state)
        self.svm_.fit(X, (y > self.centre_).astype(int), sample_weight=sample_weight)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(below or at centre), P(above centre) per row."""
        proba = self.svm_.predict_proba(X)
        if proba.shape[1] == 2:
            return proba
        only = int(self.svm_.classes_[0])  # a single side seen so far
        out = np.zeros((len(X), 2))
        out[:, only] = 1.0
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 where the target is predicted above the centre."""
        return np.argmax(self.predict_proba(X), axis=1)
