"""Soft labels from several annotators' (multi-label) answers, weighted by annotator competence.

Martín-Morató, Harju, Ahokas & Mesaros, "Training Sound Event Detection with Soft Labels from
Crowdsourced Annotations", sec. 2.1, eq. 1: for each item t and class,
a_t = sum_j theta_j v_j / sum_j theta_j over the annotators j who answered t, v_j = 1 when
j marked the class present and 0 otherwise. A reliable minority (2 of 5 at theta 0.9 against
3 at 0.2) can reach a_t > 0.5: that is the point of weighting by competence.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from listenloop.crowd.aggregation.trust_weighted_vote import trust_lookup
from listenloop.errors import ListenloopError

SEP = "|"


def soft_labels(
    answers: pd.DataFrame,
    competence: Mapping[str, float] | pd.Series | None = None,
    default_competence: float = 1.0,
    sep: str = SEP,
) -> pd.DataFrame:
    """Items × classes DataFrame of a_t in [0, 1] (004_ eq. 1); index `item` and columns sorted.

    A label cell may name several classes separated by `sep` ("cough|speech"): each is
    present (v=1) for that annotator, every other class absent (v=0); an empty cell says
    "nothing present". `competence` maps worker id -> theta (default 1 for everyone, i.e. the
    plain share of annotators); workers it does not name get `default_competence`.
    """
    items = answers["item"].astype(str).to_numpy()
    cells = answers["label"].astype(str).to_numpy()
    worker_ids, workers = np.unique(answers["worker"].astype(str).to_numpy(), return_inverse=True)
    theta = trust_lookup(worker_ids, competence, default_competence, what="competence")[workers]
    item_ids, item_codes = np.unique(items, return_inverse=True)

    # One (answer row, class) pair per class named in a cell, duplicates within a cell dropped.
    pairs = pd.DataFrame({"row": np.arange(len(cells)), "cls": [c.split(sep) for c in cells]}).explode("cls")
    pairs["cls"] = pairs["cls"].astype(str).str.strip()
    pairs = pairs[pairs["cls"] != ""].drop_duplicates()
    classes, cls_codes = np.unique(pairs["cls"].to_numpy(dtype=str), return_inverse=True)
    rows = pairs["row"].to_numpy(dtype=np.int64)

    n_items, n_classes = len(item_ids), len(classes)
    numer = np.bincount(
        item_codes[rows] * n_classes + cls_codes, weights=theta[rows], minlength=n_items * n_classes
    ).reshape(n_items, n_classes)
    denom = np.bincount(item_codes, weights=theta, minlength=n_items)
    zero = np.flatnonzero(denom <= 0)
    if len(zero):
        raise ListenloopError(f"item {item_ids[zero[0]]!r}: all its annotators have competence 0")
    return pd.DataFrame(
        numer / denom[:, None], index=pd.Index(item_ids, name="item"), columns=pd.Index(classes, name="class")
    )


def hard_labels(soft: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Boolean activity per item and class: True where the soft label is above `threshold`.

    As in 004_ (sec. 2.1), a value exactly at the threshold counts as inactive.
    """
    return soft > threshold
