"""Aggregating numeric answers (ratings): mean, median and trust-weighted mean per item.

crowd-kit has no aggregator for scalar ratings; on a real emotion-rating set the mean beat
the median (MAE 12.0 against 13.5), so the mean is the default to reach for.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from listenloop.crowd.aggregation.trust_weighted_vote import Trust, trust_lookup
from listenloop.errors import ListenloopError


def _ratings(answers: pd.DataFrame) -> pd.DataFrame:
    """`item` (str), `worker` (str), `rating` (float) from an answers table; bad numbers name their line."""
    raw = answers["label"]
    values = pd.to_numeric(raw, errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() | ~np.isfinite(values.to_numpy(dtype=float)))
    if len(bad):
        # line numbers as in the CSV: header is line 1, first answer line 2
        raise ListenloopError(f"answers line {bad[0] + 2}: {str(raw.iloc[bad[0]])!r} is not a number")
    return pd.DataFrame(
        {
            "item": answers["item"].astype(str).to_numpy(),
            "worker": answers["worker"].astype(str).to_numpy(),
            "rating": values.to_numpy(dtype=float),
        }
    )


def mean_ratings(answers: pd.DataFrame) -> pd.Series:
    """Mean rating per item (index `item`, sorted)."""
    return _ratings(answers).groupby("item")["rating"].mean().rename("rating")


def median_ratings(answers: pd.DataFrame) -> pd.Series:
    """Median rating per item (index `item`, sorted): robust to a few wild raters."""
    return _ratings(answers).groupby("item")["rating"].median().rename("rating")


def trust_weighted_mean(
    answers: pd.DataFrame, trust: Trust | None = None, default_trust: float = 0.5
) -> pd.Series:
    """Per item, sum(trust_j * rating_j) / sum(trust_j): the Weighted Trustability Evaluator for ratings.

    Workers not in `trust` get `default_trust`; an item whose raters all have trust 0 is an error.
    """
    table = _ratings(answers)
    workers = table["worker"].to_numpy()
    ids, codes = np.unique(workers, return_inverse=True)
    table["w"] = trust_lookup(ids, trust, default_trust)[codes]
    table["wr"] = table["w"] * table["rating"]
    sums = table.groupby("item")[["w", "wr"]].sum()
    zero = sums.index[sums["w"] <= 0]
    if len(zero):
        raise ListenloopError(f"item {zero[0]!r}: all its raters have trust 0, no weighted mean")
    return (sums["wr"] / sums["w"]).rename("rating")
