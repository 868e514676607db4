"""Uncertainty top-m, then a diverse batch (Cluster-Margin style): `margin_diverse`.

A plain top-n margin batch is often n near-duplicates (the same speaker saying the same
digit fifty times sits at the same place of the decision boundary). Clustering the m most
uncertain clips into n groups and asking the most uncertain clip of each group spreads
the batch over the boundary, which matters most while the model is still poor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans

from listenloop.strategies.base import QueryContext
from listenloop.strategies.scoring import score_pool
from listenloop.strategies.selection import top_k


@dataclass
class DiverseUncertainty:
    """Clusters the `candidates_per_query × n` most uncertain clips into n k-means groups and
    asks the most uncertain clip of each."""

    measure: str = "margin"
    candidates_per_query: int = 5
    name: str = "margin_diverse"

    def select(self, ctx: QueryContext, n: int) -> np.ndarray:
        """One clip per k-means cluster of the top-m uncertain candidates, most uncertain cluster first."""
        scores = score_pool(ctx.model, ctx.X, self.measure, subset=ctx.candidates)
        m = min(len(scores), max(n, self.candidates_per_query * n))
        top = top_k(scores, m)
        if m <= n:
            return ctx.candidates[top[:n]]
        rows = np.asarray(ctx.X[ctx.candidates[top]], dtype=np.float32)
        seed = int(ctx.rng.integers(2**31))
        clusters = KMeans(n_clusters=n, n_init=1, random_state=seed).fit_predict(rows)
        picked = []
        for c in np.unique(clusters):
            members = np.flatnonzero(clusters == c)  # positions in `top`, best score first
            picked.append(members[0])
        picked = np.array(sorted(picked))  # `top` is sorted best first, so this keeps that order
        return ctx.candidates[top[picked]]
