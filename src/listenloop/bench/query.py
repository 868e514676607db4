"""`listenloop bench query`: one query batch over big synthetic pools, listenloop against modAL.

Protocol (docs/contracts.md): a float32 pool of each size x `dims` drawn from a seeded
`classes`-class Gaussian mixture (so that the model is unsure of some clips), a
`LogisticRegression` fitted once on 700 labelled rows, one BLAS/OpenMP thread, the whole
pool scored. modAL gets the same model and the same values as a float64 copy made before
timing, so that no conversion lands inside its time. Times are medians of `repeats` calls
after a warm-up, listenloop's and modAL's calls interleaved. Peak memory is the peak of
Python-traced allocations (`tracemalloc`, which numpy reports its buffers to) above the
level before one call; BLAS's own work buffers are not traced.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from listenloop.errors import ListenloopError
from listenloop.strategies.scoring import query_top
from listenloop.strategies.selection import random_k

STRATEGIES: tuple[str, ...] = ("least_confidence", "margin", "entropy", "random")
# Batch rules with no modAL peer, timed over the same pool: a diverse batch, and auto (its arms'
# three uncertainty measures in one pass, k-means over the top 5n, the bandit's draw).
OWN_STRATEGIES: tuple[str, ...] = ("margin_diverse", "auto")
N_LABELLED = 700
_SEPARATION = 0.35
"""Scale of the class centres: with 88 dims this gives a model near 90 % accurate, so the pool
has a real tail of uncertain clips rather than ties at 1.0 or a uniform mess."""


def _centres(dims: int, classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 0])
    return (rng.standard_normal((classes, dims)) * _SEPARATION).astype(np.float32)


def make_pool(n: int, dims: int = 88, classes: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A float32 (n, dims) pool from the seeded Gaussian mixture, and its true labels.

    Drawn directly in float32 (`standard_normal(dtype=float32)`), so that a million rows take
    about a second.
    """
    rng = np.random.default_rng([seed, 1, n])
    y = rng.integers(classes, size=n)
    X = rng.standard_normal((n, dims), dtype=np.float32)
    X += _centres(dims, classes, seed)[y]
    return X, y


def fit_model(dims: int = 88, classes: int = 7, seed: int = 0) -> Any:
    """`LogisticRegression` fitted on `N_LABELLED` rows of the mixture, the same classes in each."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng([seed, 2])
    y = np.arange(N_LABELLED) % classes
    X = rng.standard_normal((N_LABELLED, dims), dtype=np.float32) + _centres(dims, classes, seed)[y]
    return LogisticRegression(max_iter=2000).fit(X, y)


def _median_times(fns: Sequence[Callable[[], Any]], repeats: int) -> list[float]:
    """Median wall time (`perf_counter`) of each function over `repeats` calls after one warm-up.

    The calls are interleaved (a, b, a, b, ...) so that load from elsewhere on a shared machine
    lands on both sides of a comparison alike.
    """
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(max(1, repeats)):
        for fn, acc in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    return [statistics.median(acc) for acc in times]


def _peak_mb(fn: Callable[[], Any]) -> float:
    """Peak traced allocation of one call above the level before it, in MB."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return round((peak - base) / 1e6, 1)


def _modal_peers() -> dict[str, Callable[..., Any]]:
    """modAL's query functions by our strategy names; a clear error when modAL is missing."""
    try:
        from modAL.uncertainty import entropy_sampling, margin_sampling, uncertainty_sampling
    except ImportError:
        raise ListenloopError(
            "bench query compares with modAL, which is not installed: pip install 'listenloop[bench]'"
        ) from None

    return {"least_confidence": uncertainty_sampling, "margin": margin_sampling, "entropy": entropy_sampling}


def fit_dal_model(dims: int = 88, classes: int = 7, seed: int = 0) -> Any:
    """DAL's MC-dropout network (003_ Table 1 settings) fitted on the same `N_LABELLED` rows as the
    logistic regression; None without torch (the row is then left out)."""
    from listenloop.strategies.registry import torch_missing

    if torch_missing():
        return None
    from listenloop.learners.mc_dropout import MCDropoutClassifier

    rng = np.random.default_rng([seed, 2])
    y = np.arange(N_LABELLED) % classes
    X = rng.standard_normal((N_LABELLED, dims), dtype=np.float32) + _centres(dims, classes, seed)[y]
    return MCDropoutClassifier(random_state=seed).fit(X, y)


def dal_query(model: Any, X: np.ndarray, batch: int) -> np.ndarray:
    """One DAL query over the whole pool: vote entropy of |D| = 128 masks (stage I), top `batch`."""
    from listenloop.strategies.base import QueryContext
    from listenloop.strategies.dal import DAL

    rows = np.arange(len(X))
    ctx = QueryContext(model, X, rows, rows[:0], rows[:0], 0, np.random.default_rng(0))
    return DAL(t0=0).select(ctx, batch)


def own_query(name: str, model: Any, X: np.ndarray, batch: int, seed: int) -> np.ndarray:
    """One batch of registry strategy `name` over the whole pool (a fresh strategy: no state)."""
    from listenloop.strategies.base import QueryContext
    from listenloop.strategies.registry import make_strategy

    rows = np.arange(len(X))
    ctx = QueryContext(model, X, rows, rows[:0], rows[:0], 0, np.random.default_rng(seed))
    return make_strategy(name).select(ctx, batch)


def bench_pool(
    model: Any,
    X: np.ndarray,
    *,
    batch: int = 30,
    repeats: int = 5,
    seed: int = 0,
    dal_model: Any = None,
) -> list[dict[str, Any]]:
    """Rows of the benchmark for one pool (float32 X), one per strategy in `STRATEGIES` and in
    `OWN_STRATEGIES` (no peer), and a `dal` row (no peer: modAL has no MC-dropout vote entropy)
    when `dal_model` is given."""
    n = X.shape[0]
    X64 = X.astype(np.float64)  # modAL's input, made before any timing
    peers = _modal_peers()
    rows: list[dict[str, Any]] = []
    for name in STRATEGIES:
        ours: Callable[[], Any]
        theirs: Callable[[], Any] | None = None
        if name == "random":
            ours = partial(random_k, n, batch, np.random.default_rng(seed))
        else:
            ours = partial(query_top, model, X, name, batch)
            theirs = partial(peers[name], model, X64, n_instances=batch)  # returns (indices, scores)
        timed = _median_times([ours] if theirs is None else [ours, theirs], repeats)
        ll_s = timed[0]
        ll_peak = _peak_mb(ours)
        row: dict[str, Any] = {
            "pool": n,
            "strategy": name,
            "listenloop_s": ll_s,
            "modal_s": None,
            "peak_mb": ll_peak,
            "modal_peak_mb": None,
            "same_batch": None,
            "ratio": None,
        }
        if theirs is not None:
            row["modal_s"] = timed[1]
            row["modal_peak_mb"] = _peak_mb(theirs)
            row["same_batch"] = set(ours().tolist()) == set(np.asarray(theirs()[0]).tolist())
            row["ratio"] = row["modal_s"] / ll_s if ll_s > 0 else None
        rows.append(row)
    del X64
    for name in OWN_STRATEGIES:
        ours = partial(own_query, name, model, X, batch, seed)
        rows.append(
            {
                "pool": n,
                "strategy": name,
                "listenloop_s": _median_times([ours], repeats)[0],
                "modal_s": None,
                "peak_mb": _peak_mb(ours),
                "modal_peak_mb": None,
                "same_batch": None,
                "ratio": None,
            }
        )
    if dal_model is not None:
        ours = partial(dal_query, dal_model, X, batch)
        rows.append(
            {
                "pool": n,
                "strategy": "dal",
                "listenloop_s": _median_times([ours], repeats)[0],
                "modal_s": None,
                "peak_mb": _peak_mb(ours),
                "modal_peak_mb": None,
                "same_batch": None,
                "ratio": None,
            }
        )
    return rows


def run_query_bench(
    pool_sizes: Sequence[int] = (10_000, 100_000, 1_000_000),
    *,
    dims: int = 88,
    classes: int = 7,
    batch: int = 30,
    repeats: int = 5,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """The whole benchmark, every BLAS/OpenMP pool held to one thread: rows for all pool sizes."""
    from threadpoolctl import threadpool_limits

    if batch < 1 or repeats < 1 or dims < 1 or classes < 2:
        raise ValueError("batch, repeats and dims must be >= 1, classes >= 2")
    _modal_peers()  # modAL missing: say so before any pool is built
    rows: list[dict[str, Any]] = []
    with threadpool_limits(limits=1):
        model = fit_model(dims, classes, seed)
        dal_model = fit_dal_model(dims, classes, seed)
        for n in pool_sizes:
            if n < batch:
                raise ValueError(f"pool size {n} is smaller than the batch ({batch})")
            t0 = time.perf_counter()
            X, _ = make_pool(n, dims, classes, seed)
            part = bench_pool(model, X, batch=batch, repeats=repeats, seed=seed, dal_model=dal_model)
            del X
            rows.extend(part)
            if progress is not None:
                lc = part[0]
                progress(
                    f"pool {n:,}: least_confidence {lc['listenloop_s']:.4f} s vs modAL "
                    f"{lc['modal_s']:.4f} s, same batch {lc['same_batch']} ({time.perf_counter() - t0:.1f} s)"
                )
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a fixed-width text table."""

    def num(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    head = f"{'pool':>10}  {'strategy':<16} {'listenloop s':>12} {'modAL s':>9} {'ratio':>7} "
    head += f"{'peak MB':>8} {'modAL MB':>9}  same batch"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['pool']:>10,}  {r['strategy']:<16} {num(r['listenloop_s'], '.4f'):>12} "
            f"{num(r['modal_s'], '.4f'):>9} {num(r['ratio'], '.1f'):>7} {num(r['peak_mb'], '.1f'):>8} "
            f"{num(r['modal_peak_mb'], '.1f'):>9}  {num(r['same_batch'], '')}"
        )
    return "\n".join(lines)
