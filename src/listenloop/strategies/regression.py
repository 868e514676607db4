"""AL for continuous labels through a binary-classification confidence (001_, eqs. 1-3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from listenloop.learners.sign_classifier import SignClassifier
from listenloop.strategies.base import QueryContext
from listenloop.strategies.selection import top_k
from listenloop.strategies.uncertainty import binary_confidence_informativeness


@dataclass
class RegressionBinaryConfidence:
    """Fits an SVM on the label's side of `centre` (eq. 1), takes its Platt confidence (eq. 2) and
    queries the clips with the largest I = -|conf - 0.5| (eq. 3).

    `centre=None` uses the median of the labelled targets.
    """

    centre: float | None = None
    kernel: str = "rbf"
    C: float = 1.0
    name: str = "regression_binary_confidence"

    def select(self, ctx: QueryContext, n: int) -> np.ndarray:
        """Top-n by binary-classification informativeness."""
        clf = SignClassifier(
            centre=self.centre, kernel=self.kernel, C=self.C, random_state=int(ctx.rng.integers(2**31))
        )
        clf.fit(ctx.X_labelled, ctx.y_labelled)
        ctx.extra["centre"] = clf.centre_
        p_above = ctx.proba(clf)[:, 1]
        return ctx.candidates[top_k(binary_confidence_informativeness(p_above), n)]
