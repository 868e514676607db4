"""Alternating confidence (002_): a high-confidence query every k iterations, least confidence otherwise.

Asking now and then about a clip the model is sure of lets annotators catch confident
mistakes that pure uncertainty sampling would never show them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from listenloop.strategies.base import QueryContext
from listenloop.strategies.scoring import score_pool
from listenloop.strategies.selection import top_k


@dataclass
class AlternatingConfidence:
    """Every `every`-th iteration, `high_count` of the batch are drawn at random among clips with
    confidence above `high_threshold` (T_HC); the rest of the batch is least confidence."""

    every: int = 10
    high_threshold: float = 0.85
    high_count: int = 1
    name: str = "alternating_confidence"

    def select(self, ctx: QueryContext, n: int) -> np.ndarray:
        """Least-confidence batch, with a high-confidence draw on every `every`-th iteration."""
        conf = score_pool(ctx.model, ctx.X, "confidence", subset=ctx.candidates)
        high: np.ndarray = np.empty(0, dtype=np.int64)
        if self.every > 0 and (ctx.iteration + 1) % self.every == 0:
            sure = np.flatnonzero(conf > self.high_threshold)
            if len(sure):
                high = ctx.rng.choice(sure, size=min(self.high_count, len(sure), n), replace=False)
        ctx.extra["high_confidence_queries"] = len(high)
        least = -conf.astype(np.float64)
        least[high] = -np.inf  # never pick a clip twice
        return ctx.candidates[np.concatenate([high, top_k(least, n - len(high))]).astype(np.int64)]
