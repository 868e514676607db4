"""What the platform believes about its workers: per-worker confusion matrices and a class prior.

A redundancy policy asks "how sure are we of this item now?". With only a trust per worker,
the answer assumes that a wrong worker picks any other class at random (one-coin). Real
crowds confuse neighbouring classes systematically (a "slightly negative" face read as
"negative"), so two agreeing answers are weaker evidence than one-coin says. A
`WorkerModel` holds each worker's confusion matrix P(answer | true class) and the class
prior, as the whole-project Dawid-Skene fit estimates them, and turns each answer into its
log-likelihood over the true classes: the item's posterior is then exactly Dawid-Skene's
E-step for that one item, the cheap per-answer re-aggregation the live loop needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

MISSING_FLOOR = 1e-3
"""Likelihood (and prior) given to a true class the model never saw, so it stays possible but unlikely."""


@dataclass(frozen=True)
class WorkerModel:
    """Per-worker log P(answer | true class), a log class prior, and per-worker skill (accuracy)."""

    classes: list[str]
    workers: pd.Index
    log_confusion: np.ndarray  # (workers, answered class, true class)
    log_prior: np.ndarray  # (classes,)
    skills: pd.Series  # worker -> expected accuracy, used as trust
    default_accuracy: float = 0.7

    @classmethod
    def from_dawid_skene(cls, ds: object, default_accuracy: float = 0.7) -> WorkerModel:
        """From a fitted `DawidSkene` (its `errors_`, `prior_`, `skills_`)."""
        enc = ds.encoded_  # type: ignore[attr-defined]
        return cls(
            classes=[str(c) for c in enc.classes],
            workers=pd.Index([str(w) for w in enc.worker_ids]),
            log_confusion=np.log(ds.errors_),  # type: ignore[attr-defined]
            log_prior=np.log(np.maximum(ds.prior_, 1e-300)),  # type: ignore[attr-defined]
            skills=ds.skills_.set_axis([str(w) for w in enc.worker_ids]),  # type: ignore[attr-defined]
            default_accuracy=default_accuracy,
        )

    def trust(self, workers: Sequence[str]) -> np.ndarray:
        """Skill of each worker (`default_accuracy` for workers the model has not seen)."""
        return self.skills.reindex([str(w) for w in workers]).fillna(self.default_accuracy).to_numpy(float)

    def prior(self, classes: Sequence[str]) -> np.ndarray:
        """Log prior over `classes` (classes the model never saw get log `MISSING_FLOOR`)."""
        col = self._columns(classes)
        out = np.full(len(classes), np.log(MISSING_FLOOR))
        out[col >= 0] = self.log_prior[col[col >= 0]]
        return out

    def evidence(self, workers: Sequence[str], labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
        """(answers, classes) log P(this answer | true class) for each answer, vectorised.

        Answers outside the model's classes (can't-tell) carry no evidence (a row of zeros).
        Workers the model has not seen are one-coin at `default_accuracy`.
        """
        k = len(classes)
        col = self._columns(classes)
        w_index = self.workers.get_indexer([str(w) for w in workers])
        a_index = pd.Index(self.classes).get_indexer([str(v) for v in labels])
        out = np.zeros((len(w_index), k))
        known = (w_index >= 0) & (a_index >= 0)
        seen = col >= 0
        rows = self.log_confusion[w_index[known], a_index[known]]  # (n_known, model classes)
        block = np.full((int(known.sum()), k), np.log(MISSING_FLOOR))
        block[:, seen] = rows[:, col[seen]]
        out[known] = block
        # Unseen workers: one-coin at the default accuracy over the policy's classes.
        fresh = (w_index < 0) & (a_index >= 0)
        if fresh.any() and k > 1:
            q = self.default_accuracy
            answered = pd.Index([str(c) for c in classes]).get_indexer(np.asarray(labels, dtype=str)[fresh])
            rows_fresh = np.full((int(fresh.sum()), k), np.log((1 - q) / (k - 1)))
            rows_fresh[np.arange(len(answered))[answered >= 0], answered[answered >= 0]] = np.log(q)
            rows_fresh[answered < 0] = 0.0
            out[fresh] = rows_fresh
        return out

    def _columns(self, classes: Sequence[str]) -> np.ndarray:
        """Index of each of `classes` in the model's classes, -1 where the model lacks it."""
        return pd.Index(self.classes).get_indexer([str(c) for c in classes])
