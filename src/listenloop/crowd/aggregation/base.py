"""The interface every categorical aggregator shares (crowd-kit's shape, scikit-learn's habits)."""

from __future__ import annotations

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


class Aggregator:
    """Base: subclasses implement `_fit(enc)` and set `probas` (n_items × n_classes) and `skills`.

    After `fit`: `probas_` (DataFrame, items × classes, rows summing to 1), `labels_`
    (Series of the most probable class; ties go to the class listed first, i.e. the smallest
    in sort order), `confidence_` (the winning probability), `skills_` (Series per worker).
    """

    def _fit(self, enc: EncodedAnswers) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def fit(self, answers: pd.DataFrame, classes: list[str] | None = None) -> Aggregator:
        """Aggregate an `item, worker, label` table (`classes` fixes the class list and its order)."""
        enc = encode(answers, classes)
        probas, skills = self._fit(enc)
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
