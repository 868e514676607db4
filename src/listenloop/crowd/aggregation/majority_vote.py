"""Majority vote: the baseline every other aggregator has to beat."""

from __future__ import annotations

import numpy as np

from listenloop.crowd.aggregation.base import Aggregator
from listenloop.crowd.answers import EncodedAnswers


def vote_shares(enc: EncodedAnswers, weights: np.ndarray | None = None) -> np.ndarray:
    """(n_items, n_classes) share of (weighted) votes per class; an item with zero total weight is uniform."""
    counts = enc.counts(weights).astype(float)
    totals = counts.sum(axis=1, keepdims=True)
    uniform = np.full_like(counts, 1.0 / max(enc.n_classes, 1))
    return np.divide(counts, totals, out=uniform, where=totals > 0)


def agreement_rate(enc: EncodedAnswers, winners: np.ndarray) -> np.ndarray:
    """Per worker, the fraction of their answers that equal the item's winning class."""
    agree = (enc.labels == winners[enc.items]).astype(float)
    answered = np.bincount(enc.workers, minlength=enc.n_workers)
    agreed = np.bincount(enc.workers, weights=agree, minlength=enc.n_workers)
    return agreed / np.maximum(answered, 1)


class MajorityVote(Aggregator):
    """Majority vote (Condorcet's jury: the most frequent answer wins), as crowd-kit's `MajorityVote`.

    Posterior = each class's share of the item's votes. Ties are broken explicitly, never by
    data order: the class listed first in sort order wins (classes are sorted strings, so
    between "cat" and "dog" it is "cat", between "0" and "1" it is "0"); crowd-kit lets the
    row order decide. Skill = each worker's agreement rate with the majority labels.
    """

    def _fit(self, enc: EncodedAnswers) -> tuple[np.ndarray, np.ndarray]:
        probas = vote_shares(enc)
        winners = np.argmax(probas, axis=1)  # argmax takes the first maximum: smallest class wins a tie
        return probas, agreement_rate(enc, winners)
