"""Cluster-Margin (Citovsky et al., NeurIPS 2021): the lowest-margin clips, round-robin over
hierarchical clusters, smallest cluster first.

The paper clusters the whole pool once (average-linkage HAC) and, each round, takes the
k_m lowest-margin clips, groups them by those clusters and picks one random clip per
cluster in order of increasing cluster size until the batch is full. Here the k_m
candidates themselves are clustered each round (average linkage, k_t clusters): HAC over a
million-clip pool needs O(pool²) memory, over k_m clips O(k_m²) (k_m is capped). Small
clusters first means rare regions of the boundary get a clip before a big crowd of
near-duplicates gets a second one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import AgglomerativeClustering

from listenloop.strategies.base import QueryContext
from listenloop.strategies.scoring import score_pool
from listenloop.strategies.selection import top_k

MAX_CLUSTERED = 3000  # k_m cap: HAC's distance matrix is k_m² floats


def round_robin_small_first(clusters: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Positions into `clusters` (a cluster id per item): one random member per cluster per round,
    clusters in order of increasing size (ties by id), until `n` are picked or all are."""
    ids, sizes = np.unique(clusters, return_counts=True)
    order = ids[np.lexsort((ids, sizes))]
    members = [rng.permutation(np.flatnonzero(clusters == c)) for c in order]
    picked: list[int] = []
    depth = 0
    while len(picked) < n and depth < max(sizes):
        for m in members:
            if depth < len(m) and len(picked) < n:
                picked.append(int(m[depth]))
        depth += 1
    return np.asarray(picked, dtype=np.int64)


@dataclass
class ClusterMargin:
    """The `margin_factor × n` lowest-margin candidates (k_m), clustered into n groups by
    average-linkage HAC, asked round-robin from the smallest cluster (`cluster_margin`)."""

    margin_factor: int = 10
    name: str = "cluster_margin"

    def select(self, ctx: QueryContext, n: int) -> np.ndarray:
        """One random clip per cluster of the k_m lowest-margin candidates, smallest cluster first."""
        scores = score_pool(ctx.model, ctx.X, "margin", subset=ctx.candidates)
        m = min(len(scores), max(n, min(self.margin_factor * n, MAX_CLUSTERED)))
        top = top_k(scores, m)
        if m <= n:
            return ctx.candidates[top[:n]]
        rows = np.asarray(ctx.X[ctx.candidates[top]], dtype=np.float32)
        clusters = AgglomerativeClustering(n_clusters=n, linkage="average").fit_predict(rows)
        return ctx.candidates[top[round_robin_small_first(clusters, n, ctx.rng)]]
