"""CROWDLAB: the classifier as one more, weighted annotator in the consensus.

Goh, Tkachenko and Mueller, "CROWDLAB: Supervised learning to infer consensus labels and
quality scores for data with multiple annotators" (2022). Given each item's answers and a
classifier's out-of-fold class probabilities for it, the posterior of item i is a weighted
average of the model's probabilities and one likelihood vector per answer:

    post[i, k] = (w_model * P[i, k] + sum_a w_a * L_a[k]) / (w_model + sum_a w_a)

where an answer for class l gives L[k] = c if k == l else (1 - c) / (K - 1), c being how often
an answer agrees with the majority-vote consensus (over items with several answers). The
weights come from agreement, scaled by how much better than always naming the most common
consensus class ("most likely class error", e):

- annotator j: w_j = max(1 - (1 - agreement of j with the other answers on the same items) / e, eps)
- model: w_model = max(1 - (model's error against the majority-vote consensus) / e, eps)
  x sqrt(mean answers per item), so the model counts for more where items have more answers
  to check it against.

A model no better than always naming the most common class gets weight eps and the consensus
is the annotator-weighted vote; a model that agrees with the crowd as often as a good annotator
counts as about sqrt(answers per item) of them. Items whose answers are all single (no overlap
to estimate agreement from) get every weight 1 and c = `PRIOR_TRUST`, the accuracy the project
assumes of an unknown worker (cleanlab falls back to the model's probabilities there).

All of it is vectorised over answers (bincount), with no loop over items or workers. Written
for listenloop (cleanlab's implementation, `cleanlab.multiannotator`, is AGPL-licensed and
loops over items in Python).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from listenloop.crowd.aggregation.base import Aggregator
from listenloop.crowd.answers import EncodedAnswers
from listenloop.crowd.worker_prior import PRIOR_TRUST
from listenloop.errors import ListenloopError

EPS = 1e-6  # the smallest weight (cleanlab's CLIPPING_LOWER_BOUND): nobody's weight is exactly 0
TEMPERATURES = (0.1, 0.2, 0.5, 0.8, 1.0, 2.0, 3.0, 5.0, 8.0)  # the coarse grid (ActiveLab's)
SMALL = 1e-6  # probabilities are clipped here before a log


def temperature_scale(probas: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log P / T): T > 1 flattens the probabilities, T < 1 sharpens them."""
    logp = np.log(np.clip(np.asarray(probas, dtype=float), SMALL, None)) / float(temperature)
    logp -= logp.max(axis=1, keepdims=True)
    out = np.exp(logp)
    return out / out.sum(axis=1, keepdims=True)


def soft_cross_entropy(shares: np.ndarray, probas: np.ndarray) -> float:
    """Mean cross-entropy (in units of log K) of `probas` against the answers' vote `shares`."""
    k = shares.shape[1]
    return float(np.mean(-(shares * np.log(np.clip(probas, SMALL, None))).sum(axis=1) / np.log(k)))


def best_temperature(shares: np.ndarray, probas: np.ndarray) -> float:
    """The temperature whose scaled `probas` best fit the vote `shares` (soft cross-entropy): the
    best of the coarse grid, then a finer grid between its neighbours; 1 with no rows."""
    if len(shares) == 0:
        return 1.0
    grid = np.asarray(TEMPERATURES)
    losses = [soft_cross_entropy(shares, temperature_scale(probas, t)) for t in grid]
    best = int(np.argmin(losses))
    fine = np.linspace(grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)], 9)
    losses_fine = [soft_cross_entropy(shares, temperature_scale(probas, t)) for t in fine]
    return float(fine[int(np.argmin(losses_fine))])


def model_matrix(
    model_probas: pd.DataFrame | Mapping[str, object], item_ids: np.ndarray, classes: np.ndarray
) -> np.ndarray:
    """(len(item_ids), K) rows of `model_probas` (index: item ids, columns: classes, compared as
    strings) in the order of `item_ids` and `classes`, renormalised; a clear error for items or
    classes it lacks, or values that are not probabilities."""
    table = model_probas if isinstance(model_probas, pd.DataFrame) else pd.DataFrame(model_probas).T
    table = table.copy()
    table.index = table.index.astype(str)
    table.columns = table.columns.astype(str)
    missing_classes = [c for c in classes if c not in table.columns]
    if missing_classes:
        raise ListenloopError(f"model probabilities have no column for class(es) {missing_classes[:5]}")
    missing = pd.Index(item_ids).difference(table.index)
    if len(missing):
        raise ListenloopError(f"no model probabilities for {len(missing)} item(s), e.g. {missing[0]!r}")
    if table.index.duplicated().any():
        raise ListenloopError(
            f"model probabilities name item {table.index[table.index.duplicated()][0]!r} twice"
        )
    values = table.loc[list(item_ids), list(classes)].to_numpy(dtype=float)
    if not np.isfinite(values).all() or (values < 0).any():
        raise ListenloopError("model probabilities must be finite numbers >= 0")
    totals = values.sum(axis=1, keepdims=True)
    uniform = np.full_like(values, 1.0 / max(len(classes), 1))
    return np.divide(values, totals, out=uniform, where=totals > 0)


def vote_consensus(counts: np.ndarray, model: np.ndarray) -> np.ndarray:
    """Majority-vote class per item, ties broken by the model's probabilities (then the first class)."""
    return np.argmax(counts + 0.5 * model, axis=1)  # counts are whole numbers: 0.5 x P only breaks ties


class CrowdLab(Aggregator):
    """CROWDLAB consensus (see the module docstring) with crowd-kit's interface.

    `model_probas`: the classifier's out-of-fold class probabilities, a DataFrame indexed by item
    id with one column per class (every answered item needs a row; extra rows are ignored).
    `calibrate`: temperature-scale them first (`best_temperature` against the vote shares of
    the items with several answers), as ActiveLab does: the model's vote is averaged with the
    answers' likelihoods, so an over-confident model would outvote a crowd that agrees.
    After `fit`: besides the `Aggregator` attributes, `model_weight_`, `annotator_weights_`
    (= `skills_`, per worker), `consensus_likelihood_` (c), `most_likely_class_error_` (e),
    `mean_answers_` and `temperature_` (1 without calibration).
    """

    def __init__(self, model_probas: pd.DataFrame, calibrate: bool = True) -> None:
        self.model_probas = model_probas
        self.calibrate = calibrate

    def _fit(self, enc: EncodedAnswers) -> tuple[np.ndarray, np.ndarray]:
        K = enc.n_classes
        if K < 2:
            raise ListenloopError("CROWDLAB needs at least two classes")
        model = model_matrix(self.model_probas, enc.item_ids, enc.classes)
        n_answers = np.bincount(enc.items, minlength=enc.n_items)
        counts = enc.counts().astype(float)
        self.temperature_ = 1.0
        if self.calibrate:
            several = n_answers >= 2
            shares = counts[several] / n_answers[several, None]
            self.temperature_ = best_temperature(shares, model[several])
            model = temperature_scale(model, self.temperature_)
        consensus = vote_consensus(counts, model)
        multi = n_answers >= 2
        self.mean_answers_ = float(n_answers.mean())
        if multi.any():
            agreement = counts[np.arange(enc.n_items), consensus] / n_answers
            likelihood = float(agreement[multi].mean())
            majority_class = np.bincount(consensus[multi], minlength=K).argmax()
            mlce = max(float(np.mean(consensus[multi] != majority_class)), EPS)
            # each answer on an item with others: the share of the others that gave the same class
            on_multi = multi[enc.items]
            same = (counts[enc.items, enc.labels] - 1.0) / np.maximum(n_answers[enc.items] - 1, 1)
            answered = np.bincount(enc.workers[on_multi], minlength=enc.n_workers)
            agreed = np.bincount(enc.workers[on_multi], weights=same[on_multi], minlength=enc.n_workers)
            with np.errstate(invalid="ignore", divide="ignore"):
                with_others = agreed / answered
            # a worker never on an item with others: the mean of those who were
            with_others[answered == 0] = float(np.mean(with_others[answered > 0]))
            weights = np.maximum(1.0 - (1.0 - with_others) / mlce, EPS)
            model_error = float(np.mean(model[multi].argmax(axis=1) != consensus[multi]))
            model_weight = max(1.0 - model_error / mlce, EPS) * np.sqrt(self.mean_answers_)
        else:  # no overlap to learn weights from
            likelihood, mlce = PRIOR_TRUST, float("nan")
            weights = np.ones(enc.n_workers)
            model_weight = 1.0
        other = (1.0 - likelihood) / (K - 1)
        answer_weight = weights[enc.workers]
        total = np.bincount(enc.items, weights=answer_weight, minlength=enc.n_items)
        weighted_counts = enc.counts(answer_weight)
        numerator = model_weight * model + other * total[:, None] + (likelihood - other) * weighted_counts
        probas = numerator / (model_weight + total)[:, None]
        self.model_weight_ = float(model_weight)
        self.annotator_weights_ = pd.Series(
            weights, index=pd.Index(enc.worker_ids, name="worker"), name="weight"
        )
        self.consensus_likelihood_ = likelihood
        self.most_likely_class_error_ = mlce
        return probas, weights
