"""Feature matrices read a chunk of rows at a time, so a pool larger than memory never loads whole.

A learning round over a million ComParE clips (6,373 float32 values each: 25.5 GB) can hold
neither the matrix nor a standardised copy of it. `LazyRows` is what such a matrix looks like
to the strategies and learners: `X[rows]`, `X[a:b]` and `X[i]` return ndarrays of those rows
only, and `X.shape` is the whole. `Standardised` is a lazy, standardised view of another
matrix (the round's features minus the pool's mean, over its std), computed per read instead
of stored. `rows_per_chunk` sizes chunks by bytes, not rows: 65,536 rows of 88 values are
23 MB, of 6,373 values 1.7 GB.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Bytes of float32 rows read per chunk: bounds the memory of a sweep over a pool of any width.
CHUNK_BYTES = 32 * 1024**2
#: Most rows per chunk (narrow features: amortises the per-chunk cost of a model's predict).
MAX_CHUNK_ROWS = 65536


def rows_per_chunk(dim: int, chunk_bytes: int | None = None, most: int = MAX_CHUNK_ROWS) -> int:
    """Rows of `dim` float32 values that fit in `chunk_bytes` (default CHUNK_BYTES; at least 1,
    at most `most`)."""
    budget = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    return int(max(1, min(most, budget // max(1, 4 * int(dim)))))


class LazyRows:
    """A 2-D float32 matrix whose rows are read on demand (subclasses implement `_take`).

    Indexing with an int, a slice or an integer array returns an ndarray of those rows; indexing
    columns, or converting the whole matrix with np.asarray, is refused (it would load it all).
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, n_rows: int, dim: int) -> None:
        self.shape = (int(n_rows), int(dim))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, tuple):
            raise TypeError("lazy feature rows are indexed by rows only")
        if isinstance(index, slice):
            return self._take(np.arange(*index.indices(self.shape[0]), dtype=np.int64))
        if np.isscalar(index):
            i = int(index)  # type: ignore[arg-type]
            return self._take(np.array([i + self.shape[0] if i < 0 else i], dtype=np.int64))[0]
        rows = np.asarray(index)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64, copy=False).ravel()
        if len(rows) and (rows.min() < -self.shape[0] or rows.max() >= self.shape[0]):
            raise IndexError(f"row index out of range for {self.shape[0]} rows")
        return self._take(np.where(rows < 0, rows + self.shape[0], rows))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(
            f"a lazy {self.shape[0]} x {self.shape[1]} feature matrix is read by rows (X[rows]), not whole"
        )

    def _take(self, rows: np.ndarray) -> np.ndarray:
        """The rows `rows` (non-negative, in range), as a float32 ndarray."""
        raise NotImplementedError


class Standardised(LazyRows):
    """`(X - mean) / std` computed row chunk by row chunk when read (float64 arithmetic, float32 out)."""

    def __init__(self, X: Any, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__(X.shape[0], X.shape[1])
        self.base = X
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)

    def _take(self, rows: np.ndarray) -> np.ndarray:
        raw = np.asarray(self.base[rows])
        return ((raw - self.mean) / self.std).astype(np.float32)


def column_stats(X: Any, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (float64, population) of `X[rows]`'s columns, one chunk of rows at a time.

    Chunks are combined with Chan et al.'s pairwise update of (count, mean, sum of squared
    deviations), so the result matches a two-pass np.std to rounding, without the whole matrix.
    """
    rows = np.sort(np.asarray(rows, dtype=np.int64))  # in storage order: a memory-mapped pool reads ahead
    dim = X.shape[1]
    step = rows_per_chunk(dim)
    count = 0
    mean = np.zeros(dim)
    m2 = np.zeros(dim)
    for s in range(0, len(rows), step):
        part = np.asarray(X[rows[s : s + step]], dtype=np.float64)
        k = len(part)
        part_mean = part.mean(axis=0)
        part -= part_mean
        part_m2 = np.einsum("ij,ij->j", part, part)
        total = count + k
        delta = part_mean - mean
        mean = mean + delta * (k / total)
        m2 = m2 + part_m2 + delta**2 * (count * k / total)
        count = total
    if count == 0:
        return mean, np.ones(dim)
    return mean, np.sqrt(m2 / count)


def standardise(X: Any, rows: np.ndarray) -> Standardised:
    """X standardised on the mean and std of `X[rows]` (a constant column divided by 1), as a lazy
    view: the one standardisation of an active-learning round, live or simulated."""
    mean, std = column_stats(X, rows)
    std[std == 0] = 1.0
    return Standardised(X, mean, std)
