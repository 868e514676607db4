"""Uncertainty sampling: least confidence, margin, entropy (top-n), medium certainty (middle of the queue)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from listenloop.strategies.base import QueryContext
from listenloop.strategies.scoring import query_top, score_pool
from listenloop.strategies.selection import middle_k


@dataclass
class UncertaintySampling:
    """Queries the `n` clips with the highest `measure` (least_confidence, margin or entropy)."""

    measure: str = "least_confidence"
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.measure

    def select(self, ctx: QueryContext, n: int) -> np.ndarray:
        """Top-n by the measure, scored chunkwise over the candidates."""
        return query_top(ctx.model, ctx.X, self.measure, n, subset=ctx.candidates)


@dataclass
class MediumCertainty:
    """Queries the `n` clips in the middle of the confidence ranking (000_, Table 1 step 4)."""

    name: str = "medium_certainty"

    def select(self, ctx: QueryContext, n: int) -> np.ndarray:
        """The n clips centred on the median rank of the descending confidence queue."""
        conf = score_pool(ctx.model, ctx.X, "confidence", subset=ctx.candidates)
        return ctx.candidates[middle_k(conf, n)]
