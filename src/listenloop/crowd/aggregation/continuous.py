"""Aggregating numeric answers (ratings): mean, median and trust-weighted mean per item.

crowd-kit has no aggregator for scalar ratings; on a real emotion-rating set the mean beat
the median (MAE 12.0 against 13.5), so the mean is the default to reach for.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from listenloop.crowd.aggregation.trust_weighted_vote import Trust, trust_lookup
from listenloop.crowd.worker_prior import PRIOR_TRUST
from listenloop.errors import ListenloopError

# A plain decimal number in ASCII: sign, digits, a point, an exponent. Not "1_0", "٥" (Arabic-Indic)
# or "５" (full width), which Python's float() reads, nor "nan", "inf" or a hexadecimal float.
PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_rating(text: str) -> float:
    """The value of a rating written as a plain decimal number (surrounding spaces allowed);
    ValueError for anything else, a non-finite value included. The platform's answers and
    `listenloop aggregate` read ratings with it."""
    stripped = text.strip()
    if not PLAIN_DECIMAL.fullmatch(stripped):
        raise ValueError(f"{stripped[:40]!r} is not a plain decimal number")
    value = float(stripped)
    if not math.isfinite(value):
        raise ValueError(f"{stripped[:40]} is too large for a number")
    return value


def _ratings(answers: pd.DataFrame) -> pd.DataFrame:
    """`item` (str), `worker` (str), `rating` (float) from an answers table; bad numbers name their line."""
    raw = answers["label"].astype(str).to_numpy()
    values = np.empty(len(raw))
    for i, text in enumerate(raw):
        try:
            values[i] = parse_rating(text)
        except ValueError:
            # line numbers as in the CSV: header is line 1, first answer line 2
            raise ListenloopError(f"answers line {i + 2}: {text!r} is not a number") from None
    return pd.DataFrame(
        {
            "item": answers["item"].astype(str).to_numpy(),
            "worker": answers["worker"].astype(str).to_numpy(),
            "rating": values,
        }
    )


def mean_ratings(answers: pd.DataFrame) -> pd.Series:
    """Mean rating per item (index `item`, sorted)."""
    return _ratings(answers).groupby("item")["rating"].mean().rename("rating")


def median_ratings(answers: pd.DataFrame) -> pd.Series:
    """Median rating per item (index `item`, sorted): robust to a few wild raters."""
    return _ratings(answers).groupby("item")["rating"].median().rename("rating")


def trust_weighted_mean(
    answers: pd.DataFrame, trust: Trust | None = None, default_trust: float = PRIOR_TRUST
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


RATING_PRIOR_SHARE = 0.125  # an unknown annotator's noise sd: this share of the rating range ...
RATING_PRIOR_CHECKS = 2.0  # ... worth this many control answers
MIN_NOISE_SHARE = 0.005  # a noise sd never below this share of the range (answers are rounded)


def prior_noise(low: float, high: float) -> float:
    """The noise sd of an annotator with no control answers yet: one prior shared by every path."""
    return RATING_PRIOR_SHARE * (float(high) - float(low))


def rating_noise(
    squared_errors: float,
    checks: int | float,
    low: float,
    high: float,
    prior_checks: float = RATING_PRIOR_CHECKS,
) -> float:
    """An annotator's noise sd from their control answers: the root of
    `(prior_checks * prior^2 + sum (answer - gold)^2) / (prior_checks + checks)`, the posterior
    mean variance under an inverse-gamma prior at `prior_noise` worth `prior_checks` answers
    (the continuous analogue of one-coin trust), at least `MIN_NOISE_SHARE` of the range."""
    width = float(high) - float(low)
    prior = prior_noise(low, high)
    var = (prior_checks * prior**2 + float(squared_errors)) / (prior_checks + float(checks))
    return max(float(np.sqrt(var)), MIN_NOISE_SHARE * width)
