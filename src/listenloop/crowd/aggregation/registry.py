"""Aggregation methods by the names the command line uses."""

from __future__ import annotations

from typing import Any

from listenloop.errors import ListenloopError

CATEGORICAL = ("mv", "trust", "ds", "mace", "glad", "crowdlab")
CONTINUOUS = ("mean", "median", "trust_mean")


def check_method(method: str) -> str:
    """`method` if it is a known aggregation method, else a clear error listing them."""
    if method not in CATEGORICAL + CONTINUOUS:
        raise ListenloopError(f"unknown method '{method}' (known: {', '.join(CATEGORICAL + CONTINUOUS)})")
    return method


def make_aggregator(method: str, trust: Any = None, model_probas: Any = None) -> Any:
    """A fresh categorical aggregator for `method` (`trust` feeds the trust-weighted vote,
    `model_probas` CROWDLAB: a classifier's out-of-fold probabilities, items x classes)."""
    if method == "mv":
        from listenloop.crowd.aggregation.majority_vote import MajorityVote

        return MajorityVote()
    if method == "trust":
        from listenloop.crowd.aggregation.trust_weighted_vote import TrustWeightedVote

        return TrustWeightedVote(trust=trust)
    if method == "ds":
        from listenloop.crowd.aggregation.dawid_skene import DawidSkene

        return DawidSkene()
    if method == "mace":
        from listenloop.crowd.aggregation.mace import MACE

        return MACE()
    if method == "glad":
        from listenloop.crowd.aggregation.glad import GLAD

        return GLAD()
    if method == "crowdlab":
        if model_probas is None:
            raise ListenloopError(
                "crowdlab counts a classifier as one more annotator: give its probabilities"
            )
        from listenloop.crowd.aggregation.crowdlab import CrowdLab

        return CrowdLab(model_probas)
    check_method(method)
    raise ListenloopError(f"'{method}' is a method for continuous answers, not an aggregator of classes")
