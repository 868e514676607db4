"""Dawid-Skene: EM over per-worker confusion matrices and a class prior."""

from __future__ import annotations

import numpy as np

from listenloop.crowd.aggregation.base import Aggregator, clamp
from listenloop.crowd.aggregation.majority_vote import vote_shares
from listenloop.crowd.answers import EncodedAnswers
from listenloop.errors import ListenloopError


def sum_by(index: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """(size, K) sums of the rows of `values` (n, K) grouped by `index` (n,): one bincount per column."""
    return np.stack(
        [np.bincount(index, weights=values[:, k], minlength=size) for k in range(values.shape[1])], axis=1
    )


class DawidSkene(Aggregator):
    """Dawid & Skene (1979), "Maximum Likelihood Estimation of Observer Error-Rates Using the EM
    Algorithm", as crowd-kit's `DawidSkene`.

    Each worker has a confusion matrix P(answer | true class); the true classes have a prior.
    EM starts from majority-vote shares and alternates: M-step, confusion matrices and prior
    from the current posteriors (`smoothing` pseudo-counts keep unseen cells off zero);
    E-step, posteriors from the prior times each answer's likelihood, in log space. It stops
    after `n_iter` rounds or when no posterior moves by more than `tol`. Known items (`gold`)
    stay at their class in every E-step (crowd-kit's `true_labels`).
    Skill = each worker's expected accuracy, sum_k prior_k * P(answer k | true k).
    """

    def __init__(self, n_iter: int = 100, tol: float = 1e-5, smoothing: float = 0.01) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.smoothing = smoothing

    def _fit(self, enc: EncodedAnswers) -> tuple[np.ndarray, np.ndarray]:
        # Everything is vectorised over answers (bincount per class, fancy indexing), with no
        # Python loop over answers or workers: crowd-kit's pandas groupby implementation takes
        # several seconds per fit on product (8,315 items); this takes a fraction of a second.
        if not self.smoothing > 0:  # zero pseudo-counts give log(0) for unseen answers, then NaN posteriors
            raise ListenloopError(f"DawidSkene smoothing must be > 0, got {self.smoothing}")
        K, W = enc.n_classes, enc.n_workers
        probas = clamp(vote_shares(enc), self.known_)
        cell = enc.workers * K + enc.labels  # (worker, answered class) per answer
        self.n_iter_ = 0
        for it in range(1, self.n_iter + 1):
            # M-step: errors[w, answered, true] = expected count, normalised over the answered class.
            errors = sum_by(cell, probas[enc.items], W * K).reshape(W, K, K) + self.smoothing
            errors /= errors.sum(axis=1, keepdims=True)
            prior = probas.mean(axis=0)
            # E-step: log posterior = log prior + sum over the item's answers of log P(answer | true).
            log_lik = sum_by(enc.items, np.log(errors[enc.workers, enc.labels]), enc.n_items)
            log_post = log_lik + np.log(np.maximum(prior, 1e-300))
            log_post -= log_post.max(axis=1, keepdims=True)
            new = np.exp(log_post)
            new /= new.sum(axis=1, keepdims=True)
            clamp(new, self.known_)
            delta = np.abs(new - probas).max()
            probas = new
            self.n_iter_ = it
            if delta < self.tol:
                break
        self.errors_ = errors
        self.prior_ = prior
        skills = np.einsum("k,wkk->w", prior, errors)
        return probas, skills
