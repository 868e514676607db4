"""Inter-annotator agreement of a crowd's answers: Krippendorff's alpha and Fleiss' kappa,
overall and per class.

Both statistics come from their libraries (`krippendorff.alpha`, nominal level, and
`statsmodels.stats.inter_rater.fleiss_kappa`); this module only turns answers into the tables
they read, items × values of answer counts:

- alpha reads every item with at least two answers, however many each has (alpha allows
  missing values; an item with one answer holds no pair and does not count).
- Fleiss' kappa needs the same number of answers on every item, and the platform asks a clip
  as many times as its agreement needs (dynamic redundancy). So kappa reads the first `k`
  answers (in answer order) of every item with at least `k`, `k` the number that keeps the most
  answers (`k` × items with at least `k`). The first answers of every clip are the ones asked
  before its agreement was known: dropping the clips that took more answers instead would keep
  the easy ones and overstate agreement.
- Per class (or tag): the same statistics on the answers turned into "this class" against
  "another class" (one against the rest; Fleiss' kappa of that table is Fleiss' (1971)
  category-specific kappa).

Multi-label answers are tag sets: overall, a set is one nominal value (agreement on the whole
set); per tag, presence against absence. "Can't tell" counts toward no class and is left out
before anything is counted. A statistic that the answers cannot define (fewer than two values
in play, no item with two answers) is None.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
from statsmodels.stats.inter_rater import fleiss_kappa as _fleiss_kappa

from listenloop.crowd.answers import CANT_TELL

TAG_SEP = "|"


def count_table(
    items: Sequence[Any], labels: Sequence[Any], values: Sequence[Any] | None = None
) -> np.ndarray:
    """Items × values: how many answers gave each value to each item (items in first-seen
    order, values in `values`' order, else sorted; an answer whose value is not in `values` is
    dropped)."""
    item_codes, uniques = pd.factorize(pd.Series(list(items), dtype=object), sort=False)
    cats = list(values) if values is not None else sorted(set(labels), key=str)
    codes = pd.Series(list(labels), dtype=object).map({v: i for i, v in enumerate(cats)})
    keep = codes.notna().to_numpy()
    flat = item_codes[keep] * len(cats) + codes[keep].to_numpy(dtype=np.int64)
    n = len(uniques) * len(cats)
    return np.bincount(flat, minlength=n).reshape(len(uniques), len(cats)).astype(float)


def alpha(counts: np.ndarray) -> float | None:
    """Krippendorff's alpha (nominal) of an items × values count table; None where undefined."""
    counts = np.asarray(counts, dtype=float)
    counts = counts[counts.sum(axis=1) >= 2]
    if counts.shape[0] == 0 or np.count_nonzero(counts.sum(axis=0)) < 2:
        return None
    value = float(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"))
    return value if np.isfinite(value) else None


def kappa(counts: np.ndarray) -> float | None:
    """Fleiss' kappa of an items × values table whose rows all hold the same number (at least
    two) of answers; None where undefined (one value only, or no item)."""
    counts = np.asarray(counts, dtype=float)
    if counts.shape[0] == 0 or counts.sum(axis=1).max() < 2 or np.count_nonzero(counts.sum(axis=0)) < 2:
        return None
    value = float(_fleiss_kappa(counts, method="fleiss"))
    return value if np.isfinite(value) else None


def kappa_raters(per_item: Sequence[int] | np.ndarray) -> int:
    """The `k` that Fleiss' kappa reads: the number of answers per item, at least 2, that keeps
    the most answers (`k` × items with at least `k`); the smaller on a tie; 0 when no item has two."""
    n = np.asarray(per_item, dtype=int)
    best, best_kept = 0, 0
    for k in sorted({int(v) for v in n if v >= 2}):
        kept = k * int((n >= k).sum())
        if kept > best_kept:
            best, best_kept = k, kept
    return best


def agreement(
    items: Sequence[Any], labels: Sequence[str], classes: Sequence[str], *, multilabel: bool = False
) -> dict[str, Any]:
    """Alpha and kappa of the answers `items[i]` got `labels[i]` (in answer order), overall and
    per class of `classes` (tags for `multilabel`, answers like "a|b").

    `{alpha, kappa, items, answers, kappa_raters, kappa_items, classes: [{label, answers,
    alpha, kappa}]}`: `items`, `answers`: the items with at least two answers and their answers
    (what alpha reads); `kappa_raters` (k) and `kappa_items`: what Fleiss' kappa reads;
    per class, `answers` is how many answers gave that class (or tag).
    """
    frame = pd.DataFrame({"item": list(items), "label": [str(v) for v in labels]})
    frame = frame[frame["label"] != CANT_TELL].reset_index(drop=True)
    sizes = frame.groupby("item", sort=False)["label"].transform("size")
    frame = frame[sizes >= 2].reset_index(drop=True)
    position = frame.groupby("item", sort=False).cumcount().to_numpy()
    per_item = frame.groupby("item", sort=False).size()
    k = kappa_raters(per_item.to_numpy())
    first = frame[position < k] if k else frame.iloc[:0]
    first = first[first["item"].map(per_item) >= k] if k else first

    if multilabel:
        sets = sorted(set(frame["label"]), key=str)
        overall_values: list[str] = sets
    else:
        overall_values = list(classes) + sorted(set(frame["label"]) - set(classes), key=str)
    full = count_table(frame["item"], frame["label"], overall_values)
    firsts = count_table(first["item"], first["label"], overall_values)
    out: dict[str, Any] = {
        "alpha": alpha(full),
        "kappa": kappa(firsts) if k else None,
        "items": int(per_item.size),
        "answers": len(frame),
        "kappa_raters": k,
        "kappa_items": int(first["item"].nunique()) if k else 0,
        "classes": [],
    }
    for name in classes:
        if multilabel:
            hit = frame["label"].map(lambda v, t=name: t in v.split(TAG_SEP))
            hit_first = first["label"].map(lambda v, t=name: t in v.split(TAG_SEP))
        else:
            hit = frame["label"] == name
            hit_first = first["label"] == name
        binary = count_table(frame["item"], hit.astype(bool), [True, False])
        binary_first = count_table(first["item"], hit_first.astype(bool), [True, False])
        out["classes"].append(
            {
                "label": name,
                "answers": int(hit.sum()),
                "alpha": alpha(binary),
                "kappa": kappa(binary_first) if k else None,
            }
        )
    return out
