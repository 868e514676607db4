"""Medoid active learning, MAL and MAL-PANN (003_, section 3, after its reference [14]).

The unlabelled set is split by k-medoids (FasterPAM from the `kmedoids` package, BUILD
initialisation: deterministic). Medoids are asked largest cluster first; each asked medoid's
label is propagated to the rest of its cluster, and the learner (an SVM by default) trains on
the manual plus the propagated labels (`pseudo_labels`, which `fit_round` adds with weight 1).

- `mal`: the distance between two clips is the symmetric Kullback-Leibler divergence between
  their per-clip Gaussians (diagonal) of the MFCCs and their deltas; features are the `mfcc`
  set's functionals (the run's `--features` do not apply: `feature_set`).
- `mal_pann`: cosine distance (eq. 1) between the run's feature vectors (PANN embeddings, or the
  best features available).

The number of clusters is the labels the run still plans to ask (one medoid per query), or
`clusters`. At most `max_rows` clips are clustered (the distance matrix is square): a random
subset of a larger pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from listenloop.errors import ListenloopError
from listenloop.strategies.base import QueryContext


def cosine_distances(X: np.ndarray) -> np.ndarray:
    """1 − cos(x_i, x_j) for every pair of rows (eq. 1); a zero row is at distance 1 from all."""
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    U = X / np.where(norms > 0, norms, 1.0)
    D = 1.0 - U @ U.T
    np.fill_diagonal(D, 0.0)
    return np.maximum(D, 0.0)


def gaussian_kl_distances(means: np.ndarray, variances: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """Symmetric KL divergence KL(p‖q) + KL(q‖p) between diagonal Gaussians, for every pair of rows.

    Per dimension it is ½[(v₁/v₂ + v₂/v₁ − 2) + (m₁ − m₂)²(1/v₁ + 1/v₂)], summed; written as
    matrix products so that thousands of clips take a fraction of a second. Variances are
    floored at `floor` (a constant series).
    """
    m = np.asarray(means, dtype=np.float64)
    v = np.maximum(np.asarray(variances, dtype=np.float64), floor)
    a = 1.0 / v
    ratio = v @ a.T  # Σ v_i / v_j
    ratio = ratio + ratio.T - 2 * m.shape[1]
    m2a = (m * m) @ a.T  # Σ m_i² / v_j
    cross = (m * a) @ m.T  # Σ m_i m_j / v_i
    sq = m2a + m2a.T + ((m * m) * a).sum(1)[:, None] + ((m * m) * a).sum(1)[None, :]
    sq = sq - 2 * (cross + cross.T)
    D = 0.5 * (ratio + sq)
    np.fill_diagonal(D, 0.0)
    return np.maximum(D, 0.0)


def kmedoids_clusters(D: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(medoid positions, cluster of each row) of k-medoids on the square distances `D`."""
    import kmedoids

    k = int(min(max(k, 1), len(D)))
    if k == len(D):
        return np.arange(len(D)), np.arange(len(D))
    res = kmedoids.fasterpam(D, k, init="build", random_state=seed, n_cpu=1)
    return np.asarray(res.medoids, dtype=np.int64), np.asarray(res.labels, dtype=np.int64)


@dataclass
class MedoidActiveLearning:
    """Medoids largest cluster first; their labels propagated to their clusters."""

    distance: str = "cosine"  # "kl" (MAL: Gaussians of MFCCs) or "cosine" (MAL-PANN)
    clusters: int | None = None  # default: the labels the run plans to ask
    max_rows: int = 6000
    table: np.ndarray | None = field(default=None, repr=False)  # MAL: the raw `mfcc` table, row per clip
    name: str = "mal_pann"
    own_schedule: bool = True  # asks medoids from the first query on (no shared random warm-up)
    feature_set: ClassVar[str | None] = None
    _rows: np.ndarray | None = field(default=None, repr=False)  # clustered rows (into X)
    _cluster: np.ndarray | None = field(default=None, repr=False)  # cluster of each clustered row
    _medoids: np.ndarray | None = field(default=None, repr=False)  # medoid rows, largest cluster first

    def __post_init__(self) -> None:
        if self.distance not in ("kl", "cosine"):
            raise ListenloopError(f"{self.name}: distance must be kl or cosine, not {self.distance!r}")

    def _distances(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if self.distance == "cosine":
            return cosine_distances(np.asarray(X[rows]))
        if self.table is None:
            raise ListenloopError(
                "mal clusters per-clip Gaussians of MFCCs, which only `listenloop simulate` provides "
                "(it extracts the mfcc set for it); use mal_pann elsewhere"
            )
        from listenloop.features.spectral import mfcc_gaussians

        means, variances = mfcc_gaussians(np.asarray(self.table[rows]))
        return gaussian_kl_distances(means, variances)

    def _cluster_pool(self, ctx: QueryContext, n: int) -> None:
        rows = np.asarray(ctx.candidates, dtype=np.int64)
        if len(rows) > self.max_rows:
            rows = np.sort(ctx.rng.choice(rows, size=self.max_rows, replace=False))
        k = self.clusters or ctx.planned or max(n, len(rows) // 10)
        medoids, labels = kmedoids_clusters(self._distances(ctx.X, rows), k, seed=0)
        sizes = np.bincount(labels, minlength=len(medoids))
        order = np.lexsort((rows[medoids], -sizes))  # largest cluster first, then by row
        self._rows, self._cluster = rows, labels
        self._medoids = rows[medoids][order]
        # renumber clusters so that cluster j has medoid self._medoids[j]
        renum = np.empty(len(medoids), dtype=np.int64)
        renum[order] = np.arange(len(medoids))
        self._cluster = renum[labels]

    def select(self, ctx: QueryContext, n: int) -> np.ndarray:
        """The next `n` medoids not yet labelled, largest cluster first; when the medoids run out,
        random candidates."""
        if self._medoids is None:
            self._cluster_pool(ctx, n)
        assert self._medoids is not None
        open_ = self._medoids[np.isin(self._medoids, ctx.candidates)]
        picked = open_[:n]
        if len(picked) < n:
            rest = np.setdiff1d(ctx.candidates, picked)
            extra = ctx.rng.choice(rest, size=min(n - len(picked), len(rest)), replace=False)
            picked = np.concatenate([picked, np.sort(extra)])
        return picked.astype(np.int64)

    def pseudo_labels(self, ctx: QueryContext, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every unlabelled member of a cluster whose medoid is labelled, with the medoid's label."""
        empty = (np.empty(0, dtype=np.int64), np.asarray(ctx.y_labelled)[:0])
        if self._medoids is None or len(ctx.labelled) == 0:
            return empty
        label_of = dict(zip(np.asarray(ctx.labelled).tolist(), np.asarray(ctx.y_labelled), strict=True))
        known = np.array([m in label_of for m in self._medoids.tolist()], dtype=bool)
        if not known.any():
            return empty
        assert self._rows is not None and self._cluster is not None
        member = known[self._cluster] & np.isin(self._rows, ctx.candidates) & ~np.isin(self._rows, exclude)
        rows = self._rows[member]
        labels = np.array([label_of[int(m)] for m in self._medoids[self._cluster[member]]])
        if len(rows) == 0:
            return empty
        return rows, labels.astype(np.asarray(ctx.y_labelled).dtype)


@dataclass
class MAL(MedoidActiveLearning):
    """MAL: k-medoids under the KL divergence of per-clip MFCC Gaussians; an SVM on MFCC functionals."""

    distance: str = "kl"
    name: str = "mal"
    feature_set: ClassVar[str | None] = "mfcc"
