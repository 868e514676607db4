"""Uncertainty measures: class probabilities in, one informativeness score per clip out.

Higher score = more informative. Measures are kept apart from selection (see
`selection.py`), as in modAL, so that a new strategy is one small function.
"""

from __future__ import annotations

import numpy as np


def confidence(proba: np.ndarray) -> np.ndarray:
    """Prediction confidence: the largest class probability of each row."""
    return np.asarray(proba).max(axis=1)


def least_confidence(proba: np.ndarray) -> np.ndarray:
    """1 - max_c p(c|x): high where the model is least sure of its top class (000_, 002_)."""
    return 1.0 - confidence(proba)


def margin(proba: np.ndarray) -> np.ndarray:
    """-(p_top1 - p_top2): high where the two best classes are close."""
    proba = np.asarray(proba)
    if proba.shape[1] < 2:
        return np.zeros(len(proba), dtype=proba.dtype)
    top2 = np.partition(proba, -2, axis=1)[:, -2:]
    return top2[:, 0] - top2[:, 1]


def entropy(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy of the predicted class distribution (nats)."""
    proba = np.asarray(proba)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(proba > 0, np.log(proba), 0.0)
    return -(proba * logp).sum(axis=1)


def binary_confidence_informativeness(p_positive: np.ndarray) -> np.ndarray:
    """I = -|conf - 0.5| of a binary classifier's Platt confidence (001_, eq. 3)."""
    return -np.abs(np.asarray(p_positive) - 0.5)


def threshold_closeness(p_positive: np.ndarray, threshold: float) -> np.ndarray:
    """-|p - Td|: high where the positive-class probability sits at the decision threshold (002_)."""
    return -np.abs(np.asarray(p_positive) - threshold)


MEASURES = {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
}
