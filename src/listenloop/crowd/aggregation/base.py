"""The interface every categorical aggregator shares (crowd-kit's shape, scikit-learn's habits)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from listenloop.crowd.answers import EncodedAnswers, encode
from listenloop.errors import ListenloopError

CLASS_PRIORS = ("uniform", "estimated")


def check_class_prior(class_prior: str) -> str:
    """`class_prior` if it is one of CLASS_PRIORS, else a clear error."""
    if class_prior not in CLASS_PRIORS:
        raise ListenloopError(f"class_prior must be 'uniform' or 'estimated', not {class_prior!r}")
    return class_prior


def gold_codes(enc: EncodedAnswers, gold: Mapping[str, str] | None) -> np.ndarray:
    """(n_items,) class code of each item's known class, -1 where it is not known.

    Gold items that no answer names are ignored; a gold class outside the classes is an error.
    """
    out = np.full(enc.n_items, -1, dtype=np.int64)
    if not gold:
        return out
    lookup = {str(c): i for i, c in enumerate(enc.classes)}
    position = {str(item): i for i, item in enumerate(enc.item_ids)}
    for item, label in gold.items():
        i = position.get(str(item))
        if i is None:
            continue
        code = lookup.get(str(label))
        if code is None:
            raise ListenloopError(f"gold item {item!r}: class {label!r} is not one of {list(enc.classes)}")
        out[i] = code
    return out


def clamp(probas: np.ndarray, known: np.ndarray) -> np.ndarray:
    """`probas` with the rows of known items (`known` >= 0) set to their class (one-hot), in place."""
    rows = np.flatnonzero(known >= 0)
    if len(rows):
        probas[rows] = 0.0
        probas[rows, known[rows]] = 1.0
    return probas


class Aggregator:
    """Base: subclasses implement `_fit(enc)` and set `probas` (n_items × n_classes) and `skills`.

    After `fit`: `probas_` (DataFrame, items × classes, rows summing to 1), `labels_`
    (Series of the most probable class; ties go to the class listed first, i.e. the smallest
    in sort order), `confidence_` (the winning probability), `skills_` (Series per worker).

    `fit(..., gold=...)` clamps known items (control questions), as crowd-kit's `true_labels`:
    `known_` holds each item's known class code (-1 if unknown); EM aggregators hold those
    items' posteriors at their class in every E-step (`clamp`), so the answers to them teach
    the worker model what a right answer is; every aggregator reports them at their class.
    """

    known_: np.ndarray

    def _fit(self, enc: EncodedAnswers) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def fit(
        self,
        answers: pd.DataFrame,
        classes: list[str] | None = None,
        gold: Mapping[str, str] | None = None,
    ) -> Aggregator:
        """Aggregate an `item, worker, label` table (`classes` fixes the class list and its order;
        `gold`: item -> known class of control items, clamped)."""
        if gold and classes is None:  # a gold class nobody answered is still a class
            named = set(answers["label"].astype(str)) | {str(v) for v in gold.values()}
            classes = sorted(named)
        enc = encode(answers, classes)
        self.known_ = gold_codes(enc, gold)
        probas, skills = self._fit(enc)
        probas = clamp(np.array(probas, dtype=float), self.known_)
        self.encoded_ = enc
        self.probas_ = pd.DataFrame(probas, index=pd.Index(enc.item_ids, name="item"), columns=enc.classes)
        winner = np.argmax(probas, axis=1)
        self.labels_ = pd.Series(enc.classes[winner], index=self.probas_.index, name="label")
        self.confidence_ = pd.Series(
            probas[np.arange(len(winner)), winner], index=self.probas_.index, name="confidence"
        )
        self.skills_ = pd.Series(skills, index=pd.Index(enc.worker_ids, name="worker"), name="skill")
        return self

    def fit_predict(self, answers: pd.DataFrame) -> pd.Series:
        """Hard label per item."""
        return self.fit(answers).labels_

    def fit_predict_proba(self, answers: pd.DataFrame) -> pd.DataFrame:
        """Class posterior per item."""
        return self.fit(answers).probas_
