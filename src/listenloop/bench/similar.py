"""`listenloop bench similar`: search by example on a synthetic pool, exact against the IVF index.

The pool is a feature matrix of `clips` synthetic rows of the feature set's width (ComParE's
6,373 by default), written to disk like a learning round's: rows around `clusters` centres
(sounds of a kind resemble each other) with per-value scales spread over four orders of
magnitude (as raw acoustic features are), noise drawn from two fixed random blocks (distinct
rows at a fraction of the cost of drawing every value). Both indexes are built from the same
memory-mapped matrix (`features.search_index.build_index`); each query is what the API does
for a clip: its row, the transform, the search. recall@10 is the share of the exact search's
10 nearest that the IVF index also returns.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

CHUNK = 4096


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1e6


def synthetic_matrix(root: Path, clips: int, dim: int, clusters: int, seed: int) -> Any:
    """A FeatureMatrix of `clips` clustered rows (clip ids 1..clips) under `root`."""
    from listenloop.features.matrix import FeatureMatrix

    rng = np.random.default_rng(seed)
    scales = (10.0 ** rng.uniform(-2, 2, size=dim)).astype(np.float32)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32) * np.float32(1.5)
    blocks = rng.standard_normal((2, CHUNK, dim), dtype=np.float32)
    matrix = FeatureMatrix(root, "bench", dim, "synthetic")

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for lo in range(0, clips, CHUNK):
            n = min(CHUNK, clips - lo)
            which = rng.integers(clusters, size=n)
            noise = blocks[0][rng.integers(CHUNK, size=n)] + blocks[1][rng.integers(CHUNK, size=n)]
            rows = (centres[which] + noise * np.float32(0.7)) * scales
            ids = np.arange(lo + 1, lo + n + 1, dtype=np.int64)
            keys = np.array([i.to_bytes(32, "little") for i in ids.tolist()], dtype="S32")
            yield ids, keys, rows

    matrix.extend(batches())
    return matrix


def _timed_queries(index: Any, matrix: Any, clip_ids: np.ndarray, k: int) -> tuple[np.ndarray, list[float]]:
    """Each clip's k nearest, one query at a time as the API runs them: (ids, milliseconds)."""
    found = np.zeros((len(clip_ids), k), dtype=np.int64)
    times = []
    X = matrix.array()
    for i, cid in enumerate(clip_ids.tolist()):
        t = time.perf_counter()
        row = int(np.flatnonzero(matrix.index["id"] == cid)[-1])
        _, ids = index.search(np.array(X[row], dtype=np.float32)[None, :], k)
        times.append((time.perf_counter() - t) * 1000)
        found[i] = ids[0]
    return found, times


def run_similar_bench(
    *,
    clips: int,
    feature_set: str,
    clusters: int,
    queries: int,
    k: int,
    work: Path,
    keep: bool,
    seed: int = 0,
) -> dict[str, Any]:
    """Build the pool and both indexes under `work`, query both: the row."""
    import faiss
    from threadpoolctl import threadpool_limits

    from listenloop.features.registry import get_extractor
    from listenloop.features.search_index import INDEX_SUFFIX, build_index

    dim = int(get_extractor(feature_set).dim or 0)
    if dim <= 0:
        raise SystemExit(f"feature set {feature_set!r} has no fixed width")
    work = work.expanduser().resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    faiss.omp_set_num_threads(1)
    with threadpool_limits(1):
        t = time.perf_counter()
        matrix = synthetic_matrix(work, clips, dim, clusters, seed)
        made = time.perf_counter() - t
        rss0 = _rss_mb()
        t = time.perf_counter()
        exact = build_index(matrix, kind="exact", seed=seed)
        exact_s = time.perf_counter() - t
        t = time.perf_counter()
        ivf = build_index(matrix, kind="ivf", seed=seed)
        ivf_s = time.perf_counter() - t
        ivf.save(work, "bench")
        size_mb = (work / f"bench{INDEX_SUFFIX}").stat().st_size / 1e6
        rng = np.random.default_rng(seed + 1)
        asked = rng.choice(np.arange(1, clips + 1), size=min(queries, clips), replace=False)
        truth, exact_ms = _timed_queries(exact, matrix, asked, k)
        got, ivf_ms = _timed_queries(ivf, matrix, asked, k)
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got, truth, strict=True)]))
    self_first = float(np.mean(truth[:, 0] == asked))
    row = {
        "clips": clips,
        "feature_set": feature_set,
        "dim": dim,
        "search_dim": int(exact.components.shape[1]) if exact.components is not None else dim,
        "clusters": clusters,
        "queries": len(asked),
        "k": k,
        "threads": 1,
        "matrix_gb": round(matrix.rows * dim * 4 / 1e9, 2),
        "make_pool_s": round(made, 1),
        "exact_build_s": round(exact_s, 1),
        "ivf_build_s": round(ivf_s, 1),
        "ivf_nlist": int(faiss.extract_index_ivf(ivf.index).nlist),
        "ivf_nprobe": ivf.nprobe,
        "ivf_index_mb": round(size_mb, 1),
        "exact_query_ms_median": round(float(np.median(exact_ms)), 2),
        "exact_query_ms_p95": round(float(np.percentile(exact_ms, 95)), 2),
        "ivf_query_ms_median": round(float(np.median(ivf_ms)), 2),
        "ivf_query_ms_p95": round(float(np.percentile(ivf_ms, 95)), 2),
        f"recall_at_{k}": round(recall, 4),
        "exact_self_first": round(self_first, 4),
        "rss_mb_after_pool": round(rss0, 1),
        "rss_mb_end": round(_rss_mb(), 1),
    }
    matrix.close()
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return row
