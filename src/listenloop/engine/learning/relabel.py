"""The `relabel_or_new` queue: the learning round orders heard and new clips on one ActiveLab scale.

A project's `queue` setting picks how the crowd's answers are spent:

- `redundancy` (the default): the strategy (margin, ...) orders the clips nobody answered yet
  and each clip is asked until the redundancy policy is done with it (dynamic min, max, tau);
  a clip started keeps its place at the head, so clips are finished one after another.
- `relabel_or_new`: every clip still queued, heard or not, is ordered by its ActiveLab score
  (`crowd.activelab`): one more answer on a clip already heard where the consensus (CROWDLAB,
  the model counted as one weighted annotator) is least sure, or a first answer on a new clip
  where the model is least sure, whichever is lower. The redundancy policy still closes clips
  (min, max, tau); what changes is which clip the next answer goes to.

All of it runs in the learning round (background), which writes the order into the clips'
ranks: the request path reads the ranks as for every queue and computes nothing more.
The model's probabilities for clips it trained on are out of fold (cross-validated on the
round's labels), so a clip's own label does not vouch for itself in the consensus.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from listenloop.crowd.activelab import relabel_scores
from listenloop.strategies.base import predict_proba_chunked

OOF_FOLDS = 5
QUEUE_TASKS = ("classification", "binary")  # single-label classes: what CROWDLAB's consensus is for


def out_of_fold(
    make: Callable[[], Any], Z: Any, rows: np.ndarray, y: np.ndarray, seed: int
) -> np.ndarray | None:
    """Cross-validated class probabilities of `rows` (columns: sorted classes of `y`); None when
    some class has fewer than two labels (no stratified fold can hold it out)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    _, counts = np.unique(y, return_counts=True)
    folds = int(min(OOF_FOLDS, counts.min()))
    if len(counts) < 2 or folds < 2:
        return None
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return cross_val_predict(make(), np.asarray(Z[rows]), y, cv=cv, method="predict_proba")


def relabel_or_new_order(
    Z: Any,
    model: Any,
    make: Callable[[], Any],
    labelled: np.ndarray,
    y: np.ndarray,
    candidates: np.ndarray,
    answers: pd.DataFrame,
    classes: list[str],
    seed: int = 0,
) -> np.ndarray:
    """`candidates` (rows of `Z`: the clips still queued, heard or new) in ActiveLab order.

    `model` is the round's fit on `labelled` rows with labels `y` (`make` builds a fresh one for
    the out-of-fold probabilities); `answers` are the regular answers so far as `item, worker,
    label` with `item` the row (as a string). Rows answered but neither labelled nor candidates
    (finished, low-agreement) still count in the consensus weights.
    """
    labelled = np.asarray(labelled, dtype=np.int64)
    candidates = np.asarray(candidates, dtype=np.int64)
    if len(candidates) == 0:
        return candidates
    heard = np.unique(answers["item"].astype(np.int64).to_numpy()) if len(answers) else np.zeros(0, np.int64)
    others = np.setdiff1d(np.union1d(candidates, heard), labelled)
    model_classes = [str(c) for c in model.classes_]
    parts = [
        pd.DataFrame(predict_proba_chunked(model, Z, others), index=others.astype(str), columns=model_classes)
    ]
    oof = out_of_fold(make, Z, labelled, y, seed) if len(labelled) else None
    if oof is not None:
        parts.append(pd.DataFrame(oof, index=labelled.astype(str), columns=sorted(set(map(str, y)))))
    elif len(labelled):
        parts.append(
            pd.DataFrame(
                predict_proba_chunked(model, Z, labelled), index=labelled.astype(str), columns=model_classes
            )
        )
    probas = pd.concat(parts).reindex(columns=classes, fill_value=0.0).fillna(0.0)
    scores = relabel_scores(answers, probas, classes=classes)
    wanted = set(candidates.astype(str).tolist())
    return np.asarray([int(i) for i in scores.order() if i in wanted], dtype=np.int64)
