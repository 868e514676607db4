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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from listenloop.crowd.worker_prior import PRIOR_TRUST, pooled_error_shares, unknown_confusion

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
    default_accuracy: float = PRIOR_TRUST  # of workers the model has not seen
    error_shares: np.ndarray | None = None  # the crowd's pooled error shares (k answered, k true)

    @classmethod
    def from_dawid_skene(cls, ds: object, default_accuracy: float = PRIOR_TRUST) -> WorkerModel:
        """From a fitted `DawidSkene` (its `errors_`, `prior_`, `skills_`; the crowd's pooled error
        shares for the workers it has not seen)."""
        from listenloop.crowd.aggregation.dawid_skene import sum_by

        enc = ds.encoded_  # type: ignore[attr-defined]
        seen = sum_by(enc.workers, ds.probas_.to_numpy()[enc.items], enc.n_workers)  # type: ignore[attr-defined]
        return cls(
            classes=[str(c) for c in enc.classes],
            workers=pd.Index([str(w) for w in enc.worker_ids]),
            log_confusion=np.log(ds.errors_),  # type: ignore[attr-defined]
            log_prior=np.log(np.maximum(ds.prior_, 1e-300)),  # type: ignore[attr-defined]
            skills=ds.skills_.set_axis([str(w) for w in enc.worker_ids]),  # type: ignore[attr-defined]
            default_accuracy=default_accuracy,
            error_shares=pooled_error_shares(ds.errors_, seen),  # type: ignore[attr-defined]
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
        Workers the model has not seen are the prior's worker known by accuracy alone, at
        `default_accuracy` (`unknown_confusion`, with the crowd's pooled error shares).
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
        # Unseen workers: the prior at the default accuracy over the policy's classes.
        fresh = (w_index < 0) & (a_index >= 0)
        if fresh.any() and k > 1:
            shares = None
            if self.error_shares is not None and seen.all():
                shares = self.error_shares[np.ix_(col, col)]
            table = np.log(unknown_confusion(np.array([self.default_accuracy]), k, shares)[0])
            answered = pd.Index([str(c) for c in classes]).get_indexer(np.asarray(labels, dtype=str)[fresh])
            rows_fresh = np.zeros((int(fresh.sum()), k))
            rows_fresh[answered >= 0] = table[answered[answered >= 0]]
            out[fresh] = rows_fresh
        return out

    def _columns(self, classes: Sequence[str]) -> np.ndarray:
        """Index of each of `classes` in the model's classes, -1 where the model lacks it."""
        return pd.Index(self.classes).get_indexer([str(c) for c in classes])


SHRINK_ANSWERS = 5.0
"""Pseudo-answers per true class of the prior's behaviour (`unknown_confusion` at the worker's
trust) that each fitted confusion matrix is shrunk towards: a worker seen on three items does
not get a near-perfect matrix that would end items on their word alone."""


@dataclass(frozen=True)
class ProjectSkills:
    """A whole-project Dawid-Skene fit in the project's class order, ready to store."""

    classes: list[str]
    prior: np.ndarray  # (K,)
    workers: list[str]
    confusion: np.ndarray  # (workers, K answered, K true), shrunk towards the prior's likelihood
    skills: np.ndarray  # (workers,) expected accuracy under the prior
    iterations: int
    error_shares: np.ndarray | None = None  # (K, K) the crowd's pooled error shares (`pooled_error_shares`)


def fit_project_skills(
    answers: pd.DataFrame,
    classes: Sequence[str],
    trust: dict[str, float] | None = None,
    shrink: float = SHRINK_ANSWERS,
    default_accuracy: float = PRIOR_TRUST,
    gold: Mapping[str, str] | None = None,
) -> ProjectSkills:
    """Dawid-Skene over a project's `item, worker, label` answers (labels within `classes`).

    `gold`: items with a known class (control clips), clamped at it in every E-step, so the
    control answers teach each worker's matrix what a right answer is.

    Each worker's confusion matrix is the posterior-weighted mix of the fitted one (weighted by
    the answers the fit saw per true class) and `shrink` pseudo-answers of the prior's worker
    known by accuracy alone (`unknown_confusion`) at the worker's `trust` (control-question trust;
    `default_accuracy` when unknown), their errors spread at least as the crowd's pooled ones. A
    worker's matrix is thus a likelihood table: for K > 3 its columns sum to more than 1 until the
    fitted part outweighs the prior's.
    """
    from listenloop.crowd.aggregation.dawid_skene import DawidSkene, sum_by

    classes = [str(c) for c in classes]
    ds = DawidSkene().fit(answers, classes, gold=gold)
    enc = ds.encoded_
    k, w = len(classes), enc.n_workers
    post = ds.probas_.to_numpy()
    seen = sum_by(enc.workers, post[enc.items], w)  # (workers, K): expected answers per true class
    trust = trust or {}
    q = np.array([trust.get(str(x), default_accuracy) for x in enc.worker_ids], dtype=float)
    seen_b = seen[:, None, :]
    shares = pooled_error_shares(ds.errors_, seen)
    target = unknown_confusion(q, k, shares)
    confusion = (seen_b * ds.errors_ + shrink * target) / (seen_b + shrink)
    prior = np.maximum(ds.prior_, MISSING_FLOOR)
    prior = prior / prior.sum()
    skills = np.einsum("k,wkk->w", prior, confusion)
    return ProjectSkills(
        classes, prior, [str(x) for x in enc.worker_ids], confusion, skills, ds.n_iter_, shares
    )


def stored_evidence(
    labels: Sequence[str],
    confusions: Sequence[Sequence[Sequence[float]] | None],
    trust: Sequence[float],
    classes: Sequence[str],
) -> np.ndarray:
    """(answers, classes) log P(answer | true class) from stored per-worker confusion matrices.

    The request path's counterpart of `WorkerModel.evidence`: one clip's few answers, each with
    its worker's stored matrix (None: the prior's `unknown_confusion` at the worker's trust). Answers outside
    `classes` (can't-tell) carry no evidence; a matrix of another shape (the classes changed)
    counts as None.
    """
    k = len(classes)
    index = {str(c): i for i, c in enumerate(classes)}
    out = np.zeros((len(labels), k))
    for row, (label, matrix, q) in enumerate(zip(labels, confusions, trust, strict=True)):
        a = index.get(str(label))
        if a is None:
            continue
        if matrix is not None and len(matrix) == k and len(matrix[a]) == k:
            out[row] = np.log(np.maximum(np.asarray(matrix[a], dtype=float), 1e-12))
        else:
            out[row] = np.log(unknown_confusion(np.array([q]), k)[0, a])
    return out
