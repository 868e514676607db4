"""Trust-weighted vote: each answer counts as much as its worker is trusted."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from listenloop.crowd.aggregation.base import Aggregator
from listenloop.crowd.aggregation.majority_vote import vote_shares
from listenloop.crowd.answers import EncodedAnswers
from listenloop.crowd.worker_prior import PRIOR_TRUST
from listenloop.errors import ListenloopError

Trust = Mapping[str, float] | pd.Series


def trust_lookup(
    worker_ids: np.ndarray, trust: Trust | None, default: float, *, what: str = "trust"
) -> np.ndarray:
    """Trust per worker id (ids compared as strings), `default` for workers not in `trust`."""
    if trust is None:
        return np.full(len(worker_ids), float(default))
    table = {str(k): float(v) for k, v in trust.items()}
    values = np.array([table.get(str(w), default) for w in worker_ids], dtype=float)
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if len(bad):
        raise ListenloopError(
            f"{what} of worker {worker_ids[bad[0]]!r} is {values[bad[0]]}: need a number >= 0"
        )
    return values


class TrustWeightedVote(Aggregator):
    """Trust-weighted vote: the Weighted Trustability Evaluator used by Hantke, Zhang & Schuller,
    "Towards Intelligent Crowdsourcing for Audio Data Annotation", Interspeech 2017 (sec. 2.3).

    Workers' answers are weighted by their trust (e.g. their accuracy on control items):
    posterior = trust-weighted vote shares, so a trusted minority can outvote an untrusted
    majority. `trust` maps worker id -> trust in [0, 1]; unknown workers get `default_trust`
    (the prior of an unknown worker).
    Ties go to the class listed first in sort order, as in `MajorityVote`. Skill = the trust used.
    """

    def __init__(self, trust: Trust | None = None, default_trust: float = PRIOR_TRUST) -> None:
        self.trust = trust
        self.default_trust = default_trust

    def _fit(self, enc: EncodedAnswers) -> tuple[np.ndarray, np.ndarray]:
        theta = trust_lookup(enc.worker_ids, self.trust, self.default_trust)
        return vote_shares(enc, theta[enc.workers]), theta
