"""Selection: informativeness scores in, pool indices out."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` highest scores, best first; ties go to the lower index.

    argpartition keeps this O(n) on million-clip pools; only the k winners are sorted.
    """
    scores = np.asarray(scores)
    n = len(scores)
    k = min(int(k), n)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if k < n:
        part = np.argpartition(-scores, k - 1)[:k]
        # Ties at the cut: argpartition picks arbitrarily, so re-take the boundary value in index order.
        cut = scores[part].min()
        above = np.flatnonzero(scores > cut)
        at = np.flatnonzero(scores == cut)[: k - len(above)]
        part = np.concatenate([above, at])
    else:
        part = np.arange(n)
    order = np.lexsort((part, -scores[part]))
    return part[order].astype(np.int64)


def middle_k(confidence: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` clips in the middle of the confidence ranking (medium certainty, 000_).

    The queue is sorted by confidence, descending; the k entries centred on position
    ceil(u/2) are taken.
    """
    confidence = np.asarray(confidence)
    n = len(confidence)
    k = min(int(k), n)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    queue = np.lexsort((np.arange(n), -confidence))
    centre = int(np.ceil(n / 2)) - 1
    start = min(max(centre - k // 2, 0), n - k)
    return queue[start : start + k].astype(np.int64)


def random_k(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """`k` distinct random indices out of `n` (passive learning)."""
    return rng.choice(n, size=min(int(k), n), replace=False).astype(np.int64)
