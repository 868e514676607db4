"""Uncertainty top-m, then a diverse batch: `margin_diverse` and its kin for every uncertainty rule.

A plain top-n margin batch is often n near-duplicates (the same speaker saying the same
digit fifty times sits at the same place of the decision boundary). Clustering the m most
uncertain clips into n groups and asking the most uncertain clip of each group spreads
the batch over the boundary, which matters most while the model is still poor.
`least_confidence_diverse`, `margin_diverse` and `entropy_diverse` are this rule over the
three uncertainty measures (the registry's names `<measure>_diverse`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans

from listenloop.strategies.base import QueryContext
from listenloop.strategies.scoring import score_pool
from listenloop.strategies.selection import top_k


def kmeans_diverse(
    X: np.ndarray,
    candidates: np.ndarray,
    scores: np.ndarray,
    n: int,
    rng: np.random.Generator,
    factor: int = 5,
    ranked: np.ndarray | None = None,
) -> np.ndarray:
    """Positions into `candidates`: the best-scoring member of each of n k-means clusters of the
    `factor × n` best-scoring candidates, best cluster first (`ranked`: `top_k(scores, ≥ factor × n)`
    when the caller has it already)."""
    m = min(len(scores), max(n, factor * n))
    top = ranked[:m] if ranked is not None and len(ranked) >= m else top_k(scores, m)
    if m <= n:
        return top[:n]
    rows = np.asarray(X[candidates[top]], dtype=np.float32)
    seed = int(rng.integers(2**31))
    clusters = KMeans(n_clusters=n, n_init=1, random_state=seed).fit_predict(rows)
    # `top` is sorted best first, so the first member of each cluster is its best; sorting the
    # chosen positions keeps the best-first order across clusters.
    _, first = np.unique(clusters, return_index=True)
    return top[np.sort(first)]


@dataclass
class DiverseUncertainty:
    """Clusters the `candidates_per_query × n` most uncertain clips (by `measure`) into n k-means
    groups and asks the most uncertain clip of each."""

    measure: str = "margin"
    candidates_per_query: int = 5
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"{self.measure}_diverse"

    def select(self, ctx: QueryContext, n: int) -> np.ndarray:
        """One clip per k-means cluster of the top-m uncertain candidates, most uncertain cluster first."""
        scores = score_pool(ctx.model, ctx.X, self.measure, subset=ctx.candidates)
        picked = kmeans_diverse(ctx.X, ctx.candidates, scores, n, ctx.rng, self.candidates_per_query)
        return ctx.candidates[picked]
