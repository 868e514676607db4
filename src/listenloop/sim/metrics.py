"""Scores of a model on held-out clips: UAR (the seeds' measure), macro F1, accuracy; CC and RMSE."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, mean_squared_error, recall_score


def uar(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted average recall: mean recall over the classes present in `y_true`."""
    labels = np.unique(y_true)
    return float(recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))


def pearson_cc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Pearson correlation; 0 when either side is constant (an untrained model)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    if np.std(y_true) == 0 or np.std(y_pred) == 0:
        return 0.0
    return float(np.corrcoef(y_true, y_pred)[0, 1])


def classification_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """uar, f1 (macro over the classes present) and accuracy."""
    labels = np.unique(y_true)
    return {
        "uar": uar(y_true, y_pred),
        "f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }


def regression_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """cc (Pearson) and rmse."""
    return {"cc": pearson_cc(y_true, y_pred), "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred)))}


def task_scores(task: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """All scores of `task`."""
    return (
        classification_scores(y_true, y_pred)
        if task == "classification"
        else regression_scores(y_true, y_pred)
    )


MAIN_METRIC = {"classification": "uar", "regression": "cc"}
