"""Scoring a whole pool, chunk by chunk: the cost of a query is scoring, not selecting.

A pool may hold millions of clips and be a float32 `np.memmap` bigger than RAM, so rows
are read and scored `chunk_rows` at a time and no (n_pool x n_classes) float64 matrix
is ever built. Linear probabilistic models (scikit-learn `LogisticRegression`, bare or
as the last step of a `Pipeline`) take a fused float32 path: one GEMM to logits and the
measure straight from the logits. Any other model goes through `predict_proba` per chunk.

`query_top` makes the float32 shortcut exact: it keeps every clip whose float32 score
is near the cut, re-scores those few in float64 with the model's own `predict_proba`
and selects from the exact scores, so its batch is the batch of a float64 scorer
(modAL's, for instance).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from listenloop.rows import LazyRows, rows_per_chunk
from listenloop.strategies import uncertainty
from listenloop.strategies.selection import top_k

SCORE_MEASURES: tuple[str, ...] = ("least_confidence", "margin", "entropy", "confidence")
"""Measures `score_pool` knows. All but `confidence` are informativeness (higher = more
informative); `confidence` is the top-class probability itself (for `middle_k`)."""

DEFAULT_CHUNK_ROWS = 65536
DEFAULT_TOL = 1e-3
"""Absolute score tolerance around the k-th best float32 score in `query_top`. Float32
logits of a standardised 88-dim pool are off by ~1e-6; 1e-3 leaves room for features
hundreds of times larger and costs only a few hundred extra float64 re-scores."""

_PROBA_MEASURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    **uncertainty.MEASURES,
    "confidence": uncertainty.confidence,
}


def _check_measure(measure: str) -> None:
    if measure not in SCORE_MEASURES:
        raise ValueError(f"unknown measure {measure!r}; expected one of {', '.join(SCORE_MEASURES)}")


def _as_rows(X: Any) -> Any:
    """X as an ndarray (a memmap stays a memmap, unread), a lazy matrix (`listenloop.rows`) or a
    scipy sparse matrix; a DataFrame or a list becomes an ndarray, so that `X[a:b]` and
    `X[indices]` always select rows."""
    import scipy.sparse

    if isinstance(X, np.ndarray | LazyRows) or scipy.sparse.issparse(X):
        return X
    return np.asarray(X)


def _check_subset(subset: np.ndarray | None, n: int) -> np.ndarray | None:
    if subset is None:
        return None
    sub = np.asarray(subset)
    if sub.dtype == bool:
        if sub.shape != (n,):
            raise ValueError(f"boolean subset has shape {sub.shape}, pool has {n} rows")
        return np.flatnonzero(sub)
    sub = sub.astype(np.intp, copy=False).ravel()
    if len(sub) and (sub.min() < -n or sub.max() >= n):
        raise ValueError(f"subset index out of range for a pool of {n} rows")
    return np.where(sub < 0, sub + n, sub)


def _chunks(X: Any, chunk_rows: int | None, subset: np.ndarray | None) -> Iterator[tuple[int, int, Any]]:
    """(start, stop, rows) over the pool, or over `subset`; positions are into the output.
    `chunk_rows` None: as many rows as fit in `listenloop.rows.CHUNK_BYTES` (at most 65,536)."""
    if chunk_rows is None:
        chunk_rows = rows_per_chunk(X.shape[1], most=DEFAULT_CHUNK_ROWS)
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    n = X.shape[0] if subset is None else len(subset)
    # a subset that is one run of consecutive rows (the whole pool, a stream's window) is read by
    # slicing: no fancy-index copy of every chunk
    offset = None if subset is None or not _is_run(subset) else int(subset[0]) if len(subset) else 0
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        if subset is None:
            yield start, stop, X[start:stop]
        elif offset is not None:
            yield start, stop, X[offset + start : offset + stop]
        else:
            yield start, stop, X[subset[start:stop]]


def _is_run(rows: np.ndarray) -> bool:
    """Whether `rows` are consecutive ascending row numbers (a, a+1, ..., b)."""
    return len(rows) == 0 or (
        int(rows[-1]) - int(rows[0]) == len(rows) - 1 and bool((np.diff(rows) == 1).all())
    )


def _fused_head(model: Any) -> tuple[Any | None, np.ndarray, np.ndarray] | None:
    """(preprocessing, W float32 (C, d), b float32 (C,)) when `model` is a fitted linear softmax
    model, else None.

    Binary `LogisticRegression` has one coef row w: predict_proba is [1 - sigmoid(z), sigmoid(z)],
    which is exactly softmax([0, z]), so a zero row is stacked in front and one code path serves both.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    prep = None
    last = model
    if isinstance(model, Pipeline):
        last = model.steps[-1][1]
        prep = model[:-1] if len(model.steps) > 1 else None
    if not isinstance(last, LogisticRegression) or not hasattr(last, "coef_"):
        return None
    W = np.asarray(last.coef_, dtype=np.float64)
    b = np.asarray(last.intercept_, dtype=np.float64).ravel()
    n_classes = len(last.classes_)
    if getattr(last, "multi_class", "multinomial") == "ovr" and n_classes > 2:
        return None  # one-vs-rest probabilities (old scikit-learn) are not a softmax
    if W.shape[0] == 1:
        W = np.vstack([np.zeros_like(W), W])
        b = np.concatenate([[0.0], b if len(b) else [0.0]])
    if W.shape[0] != n_classes or b.shape != (n_classes,):
        return None
    return prep, np.ascontiguousarray(W, dtype=np.float32), b.astype(np.float32)


def _scores_from_logits(zt: np.ndarray, measure: str) -> np.ndarray:
    """The measure from float32 logits laid out (n_classes, n_rows); overwrites `zt`.

    Softmax is never materialised: with e = exp(z - max z) and s = sum(e), the top
    probability is 1/s (so least confidence = (s - 1)/s), the margin is
    (exp(z2 - z1) - 1)/s and the entropy is log s - sum(e (z - max z))/s.
    """
    if measure == "margin":
        z1 = zt[0].copy()
        z2 = np.full_like(z1, -np.inf)
        for row in zt[1:]:
            np.maximum(z2, np.minimum(z1, row), out=z2)
            np.maximum(z1, row, out=z1)
        zmax = z1
    else:
        zmax = zt.max(axis=0)
    zt -= zmax
    if measure == "entropy":
        e = np.exp(zt)
        s = e.sum(axis=0)
        e *= zt
        return np.log(s) - e.sum(axis=0) / s
    np.exp(zt, out=zt)
    s = zt.sum(axis=0)
    if measure == "least_confidence":
        return (s - 1.0) / s
    if measure == "confidence":
        return 1.0 / s
    if zt.shape[0] < 2:
        return np.zeros_like(s)
    return np.expm1(z2 - z1) / s


def _measures_from_logits(zt: np.ndarray, measures: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Several measures from float32 logits (n_classes, n_rows) with one exp pass (`_scores_from_logits`
    for each alone); overwrites `zt`."""
    z1 = zt[0].copy()
    z2 = np.full_like(z1, -np.inf)
    for row in zt[1:]:
        np.maximum(z2, np.minimum(z1, row), out=z2)
        np.maximum(z1, row, out=z1)
    zt -= z1
    e = np.exp(zt)
    s = e.sum(axis=0)
    out: dict[str, np.ndarray] = {}
    for m in measures:
        if m == "least_confidence":
            out[m] = (s - 1.0) / s
        elif m == "confidence":
            out[m] = 1.0 / s
        elif m == "margin":
            out[m] = np.expm1(z2 - z1) / s if zt.shape[0] >= 2 else np.zeros_like(s)
        else:  # entropy
            out[m] = np.log(s) - np.einsum("ij,ij->j", e, zt) / s
    return out


def _fused_chunk(rows: Any, head: tuple[Any | None, np.ndarray, np.ndarray], measure: str) -> np.ndarray:
    prep, W, b = head
    if prep is not None:
        rows = prep.transform(rows)
        if hasattr(rows, "toarray"):  # a sparse output of a transformer
            rows = rows.toarray()
    rows = np.asarray(rows, dtype=np.float32)
    # (n, d) @ (d, C) then transposed: measured faster than W @ rows.T, and the per-class rows
    # of the transposed logits make the reductions below plain elementwise passes.
    zt = np.ascontiguousarray((rows @ W.T).T)
    zt += b[:, None]
    return _scores_from_logits(zt, measure)


def _proba_chunk(rows: Any, model: Any, measure: str) -> np.ndarray:
    return np.asarray(_PROBA_MEASURES[measure](model.predict_proba(rows)), dtype=np.float64)


def _chunk_scorer(model: Any, X: Any, measure: str, fused: bool) -> Callable[[Any], np.ndarray]:
    # The hand-written fused float32 path exists because it is measurably faster than
    # predict_proba + measure: 0.16 s against 0.44 s on a 1M x 88 pool, 7 classes, one core
    # (findings.md, "Query cost"), with 16 MB instead of a 1M x 7 float64 probability matrix;
    # `listenloop bench query` measures it against modAL in the same run (about 0.1 s vs 0.5 s here).
    head = _fused_head(model) if fused else None
    if head is not None and isinstance(X, np.ndarray | LazyRows):  # sparse pools take predict_proba
        return lambda rows: _fused_chunk(rows, head, measure)
    return lambda rows: _proba_chunk(rows, model, measure)


def score_pool(
    model: Any,
    X: Any,
    measure: str,
    *,
    chunk_rows: int | None = None,
    subset: np.ndarray | None = None,
    fused: bool = True,
) -> np.ndarray:
    """Scores of every row of X (or of the rows `subset`, in its order) under `measure`.

    X may be an array or an `np.memmap`; it is read `chunk_rows` rows at a time. Linear
    softmax models give float32 scores (fused path), other models float64 from
    `predict_proba`; `fused=False` forces the `predict_proba` path.
    """
    _check_measure(measure)
    X = _as_rows(X)
    sub = _check_subset(subset, X.shape[0])
    n = X.shape[0] if sub is None else len(sub)
    score = _chunk_scorer(model, X, measure, fused)
    out: np.ndarray | None = None
    for start, stop, rows in _chunks(X, chunk_rows, sub):
        part = score(rows)
        if out is None:
            out = np.empty(n, dtype=part.dtype)
        out[start:stop] = part
    return out if out is not None else np.empty(0, dtype=np.float64)


def score_pool_many(
    model: Any,
    X: Any,
    measures: tuple[str, ...],
    *,
    chunk_rows: int | None = None,
    subset: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """`score_pool` for several measures in one pass over the pool: one GEMM (linear softmax
    models) or one `predict_proba` per chunk serves them all (`auto` asks several rules at once)."""
    for measure in measures:
        _check_measure(measure)
    X = _as_rows(X)
    sub = _check_subset(subset, X.shape[0])
    n = X.shape[0] if sub is None else len(sub)
    head = _fused_head(model)
    fused = head is not None and isinstance(X, np.ndarray | LazyRows)
    out: dict[str, np.ndarray] = {}
    for start, stop, rows in _chunks(X, chunk_rows, sub):
        if fused:
            prep, W, b = head  # type: ignore[misc]
            vals = prep.transform(rows) if prep is not None else rows
            if hasattr(vals, "toarray"):
                vals = vals.toarray()
            zt = np.ascontiguousarray((np.asarray(vals, dtype=np.float32) @ W.T).T)
            zt += b[:, None]
            parts = _measures_from_logits(zt, measures)
        else:
            proba = model.predict_proba(rows)
            parts = {m: np.asarray(_PROBA_MEASURES[m](proba), dtype=np.float64) for m in measures}
        for m, part in parts.items():
            if m not in out:
                out[m] = np.empty(n, dtype=part.dtype)
            out[m][start:stop] = part
    return {m: out.get(m, np.empty(0, dtype=np.float64)) for m in measures}


def exact_scores(model: Any, X: Any, measure: str, rows: np.ndarray) -> np.ndarray:
    """Float64 scores of `rows` of X from the model's own `predict_proba` (no fused shortcut)."""
    _check_measure(measure)
    values = _as_rows(X)[np.asarray(rows, dtype=np.intp)]
    values = values.astype(np.float64) if hasattr(values, "toarray") else np.asarray(values, dtype=np.float64)
    return _proba_chunk(values, model, measure)


def query_top(
    model: Any,
    X: Any,
    measure: str,
    k: int,
    *,
    chunk_rows: int | None = None,
    subset: np.ndarray | None = None,
    tol: float = DEFAULT_TOL,
    fused: bool = True,
) -> np.ndarray:
    """Indices into X of the `k` highest-scoring rows (of `subset` if given), best first.

    Streams the pool keeping only the running candidates (at least 2k, plus every row whose
    fast score is within `tol` of the running k-th best), so memory stays flat. The candidates
    are re-scored in float64 with `predict_proba` and the final k picked with `top_k`: the batch
    is that of an exact float64 scorer, ties going to the lower index.
    """
    _check_measure(measure)
    if tol < 0:
        raise ValueError("tol must be >= 0")
    X = _as_rows(X)
    sub = _check_subset(subset, X.shape[0])
    n = X.shape[0] if sub is None else len(sub)
    k = min(int(k), n)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    keep = 2 * k
    score = _chunk_scorer(model, X, measure, fused)
    cand_idx = np.empty(0, dtype=np.int64)
    cand_sc = np.empty(0, dtype=np.float64)
    floor = -np.inf
    for start, stop, rows in _chunks(X, chunk_rows, sub):
        sc = score(rows)
        hit = np.flatnonzero(sc >= floor) if np.isfinite(floor) else np.arange(len(sc))
        idx = (hit + start) if sub is None else sub[start:stop][hit]
        cand_idx = np.concatenate([cand_idx, idx.astype(np.int64, copy=False)])
        cand_sc = np.concatenate([cand_sc, sc[hit].astype(np.float64, copy=False)])
        if len(cand_sc) > keep:
            desc = -np.partition(-cand_sc, [k - 1, keep - 1])
            # The floor only rises: the k-th and 2k-th best of a growing set never fall.
            floor = min(desc[k - 1] - tol, desc[keep - 1])
            mine = cand_sc >= floor
            cand_idx, cand_sc = cand_idx[mine], cand_sc[mine]
    cand_idx = np.unique(cand_idx)  # ascending X index (top_k ties go to the lower index), no repeats
    step = chunk_rows or rows_per_chunk(X.shape[1], most=DEFAULT_CHUNK_ROWS)
    exact = np.concatenate(
        [exact_scores(model, X, measure, cand_idx[i : i + step]) for i in range(0, len(cand_idx), step)]
    )
    return cand_idx[top_k(exact, k)]
