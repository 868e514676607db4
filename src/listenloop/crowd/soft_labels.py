"""Soft labels from several annotators' answers, weighted by annotator competence: the one
implementation that the platform's live re-aggregation, `listenloop aggregate` and the exports use.

Martín-Morató, Harju, Ahokas & Mesaros, "Training Sound Event Detection with Soft Labels from
Crowdsourced Annotations", sec. 2.1, eq. 1: for each item t and class,
a_t = sum_j theta_j v_j / sum_j theta_j over the annotators j who answered t, v_j = 1 when
j marked the class present and 0 otherwise. A reliable minority (2 of 5 at theta 0.9 against
3 at 0.2) can reach a_t > 0.5: that is the point of weighting by competence.

A single-class answer is a vote for its class and against every other (so for classification
a_t is the competence-weighted share of the answers per class); a multi-label answer
("cough|speech") votes for each tag it names; "can't tell" counts toward no class and is left
out of the denominator too (it is no opinion on the classes). The paper estimates theta with
MACE; here it is whatever the caller's worker model gives (the platform: the background
Dawid-Skene skills, or control-question trust before a fit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from listenloop.crowd.aggregation.trust_weighted_vote import trust_lookup
from listenloop.crowd.redundancy import CANT_TELL
from listenloop.errors import ListenloopError

SEP = "|"


class ZeroCompetenceError(ListenloopError):
    """Every annotator who gave an item a class answer has competence 0 (eq. 1 divides by 0)."""

    def __init__(self, item: int) -> None:
        super().__init__(f"item #{item}: all its annotators have competence 0")
        self.item = item


def answer_tags(cell: str, sep: str | None = SEP) -> set[str]:
    """The classes an answer names: its tags (`sep`-separated, blanks dropped), or the whole
    cell as one class when `sep` is None; none for can't-tell."""
    if cell == CANT_TELL:
        return set()
    parts = [cell] if sep is None else cell.split(sep)
    return {p.strip() for p in parts} - {""}


def encode_votes(
    cells: Sequence[str], classes: Sequence[str] | None = None, sep: str | None = SEP
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Answers as (answered, vote rows, vote classes, classes).

    `answered[i]` is False for can't-tell; each (row, class) pair is one class that answer i
    marked present. `classes` fixes the class order (a tag outside it is an error); None takes
    the sorted classes the answers name.
    """
    cells = [str(c) for c in cells]
    tags = [answer_tags(c, sep) for c in cells]
    answered = np.array([c != CANT_TELL for c in cells], dtype=bool)
    if classes is None:
        classes = sorted(set().union(*tags)) if tags else []
    classes = [str(c) for c in classes]
    index = {c: i for i, c in enumerate(classes)}
    rows: list[int] = []
    codes: list[int] = []
    for i, named in enumerate(tags):
        for tag in named:
            code = index.get(tag)
            if code is None:
                raise ListenloopError(f"answer {cells[i]!r}: {tag!r} is not one of {classes}")
            rows.append(i)
            codes.append(code)
    return answered, np.array(rows, dtype=np.int64), np.array(codes, dtype=np.int64), classes


def tag_matrix(answered: np.ndarray, rows: np.ndarray, codes: np.ndarray, n_classes: int) -> np.ndarray:
    """(answers, classes) 0/1 votes from `encode_votes` (can't-tell rows are all 0)."""
    votes = np.zeros((len(answered), n_classes))
    votes[rows, codes] = 1.0
    return votes


def activity(
    item_codes: np.ndarray,
    n_items: int,
    answered: np.ndarray,
    rows: np.ndarray,
    codes: np.ndarray,
    n_classes: int,
    theta: np.ndarray,
) -> np.ndarray:
    """004_ eq. 1 over encoded answers: (items, classes) a_t; NaN for items no class answer reached.

    `item_codes[i]` is answer i's item, `theta[i]` its annotator's competence (>= 0). An item
    whose class answers all have competence 0 raises ZeroCompetenceError.
    """
    weight = np.where(answered, np.asarray(theta, dtype=float), 0.0)
    numer = np.bincount(
        item_codes[rows] * n_classes + codes, weights=weight[rows], minlength=n_items * n_classes
    ).reshape(n_items, n_classes)
    denom = np.bincount(item_codes, weights=weight, minlength=n_items)
    reached = np.bincount(item_codes, weights=answered.astype(float), minlength=n_items) > 0
    zero = np.flatnonzero(reached & (denom <= 0))
    if len(zero):
        raise ZeroCompetenceError(int(zero[0]))
    out = np.full((n_items, n_classes), np.nan)
    out[reached] = numer[reached] / denom[reached, None]
    return out


def soft_label(
    labels: Sequence[str], competence: Sequence[float], classes: Sequence[str], sep: str | None = SEP
) -> dict[str, float]:
    """One item's soft label {class: a_t} over `classes` (rounded to 6 places); {} when no
    answer names a class (none yet, or only can't-tell). The request path's call."""
    answered, rows, codes, classes = encode_votes(labels, classes, sep)
    if not answered.any():
        return {}
    theta = np.asarray(competence, dtype=float)
    a = activity(np.zeros(len(answered), dtype=np.int64), 1, answered, rows, codes, len(classes), theta)[0]
    return {c: round(float(v), 6) for c, v in zip(classes, a, strict=True)}


def soft_labels(
    answers: pd.DataFrame,
    competence: Mapping[str, float] | pd.Series | None = None,
    default_competence: float = 1.0,
    sep: str | None = SEP,
    classes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Items × classes DataFrame of a_t in [0, 1] (004_ eq. 1); index `item`, columns `classes`
    (default: the classes the answers name, sorted).

    A label cell may name several classes separated by `sep` ("cough|speech"): each is
    present (v=1) for that annotator, every other class absent (v=0); an empty cell says
    "nothing present"; `sep=None` reads each cell as one class (classification). "Can't tell"
    counts toward no class and is no opinion: an item with only can't-tell answers gets NaN.
    `competence` maps worker id -> theta (default 1 for everyone, i.e. the plain share of
    annotators); workers it does not name get `default_competence`.
    """
    items = answers["item"].astype(str).to_numpy()
    cells = answers["label"].astype(str).to_numpy()
    worker_ids, workers = np.unique(answers["worker"].astype(str).to_numpy(), return_inverse=True)
    theta = trust_lookup(worker_ids, competence, default_competence, what="competence")[workers]
    item_ids, item_codes = np.unique(items, return_inverse=True)
    answered, rows, codes, classes = encode_votes(list(cells), classes, sep)
    try:
        a = activity(item_codes, len(item_ids), answered, rows, codes, len(classes), theta)
    except ZeroCompetenceError as exc:
        raise ListenloopError(f"item {item_ids[exc.item]!r}: all its annotators have competence 0") from None
    return pd.DataFrame(a, index=pd.Index(item_ids, name="item"), columns=pd.Index(classes, name="class"))


def hard_labels(soft: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Boolean activity per item and class: True where the soft label is above `threshold`.

    As in 004_ (sec. 2.1), a value exactly at the threshold counts as inactive.
    """
    return soft > threshold
