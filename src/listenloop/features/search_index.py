"""A nearest-neighbour index over a feature matrix: search by example.

The search space is the matrix's features standardised (each value's mean and standard
deviation over a sample of rows) and, above PCA_DIM values, projected on their first PCA_DIM
principal components (fitted on the same sample): ComParE's 6,373 values would make every
distance alike and every index huge. Distances are Euclidean in that space.

Pools of at most EXACT_MAX clips get an exact index (faiss `IndexFlatL2`: every vector
compared); larger ones an inverted-file index (faiss `IndexIVFFlat`, NLIST_PER_SQRT * sqrt(n)
lists, `nprobe` of them searched), whose recall@10 against the exact search `listenloop bench
similar` measures. The index is built a chunk of rows at a time from the memory-mapped matrix
and kept next to it: `NAME.similar.faiss` (the faiss index, whose ids are clip ids) and
`NAME.similar.npz` (the transform and what it was built from), each replaced atomically. It is
stale once the matrix has other rows than it was built from (`is_fresh`).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from listenloop.features.matrix import FeatureMatrix

EXACT_MAX = 20_000  # clips: above this an approximate (IVF) index
PCA_DIM = 128
FIT_SAMPLE = 20_000  # rows the standardisation and PCA are fitted on, at most
FIT_VALUES = 32_000_000  # and at most this many values (128 MB: 5,000 ComParE rows)
NLIST_PER_SQRT = 4  # IVF lists per square root of the pool
TRAIN_PER_LIST = 40  # training rows per IVF list (faiss wants at least 39)
NPROBE_SHARE = 1 / 16  # lists searched per query: measured recall@10 >= 0.95 on 100k clips
BUILD_CHUNK = 8192
INDEX_SUFFIX = ".similar.faiss"
META_SUFFIX = ".similar.npz"


@dataclass
class SearchIndex:
    """The transform into the search space, the faiss index over it, and what it was built from."""

    mean: np.ndarray  # (dim,) float32
    scale: np.ndarray  # (dim,) float32
    components: np.ndarray | None  # (dim, PCA_DIM) float32, None: no projection
    index: object  # a faiss index whose ids are clip ids
    kind: str  # "exact" or "ivf"
    clips: int  # vectors in the index
    built_rows: int  # the matrix's rows (live and replaced) when it was built
    nprobe: int = 0

    def embed(self, X: np.ndarray) -> np.ndarray:
        """Feature rows in the search space (float32, C-contiguous)."""
        Z = (np.asarray(X, dtype=np.float32) - self.mean) / self.scale
        if self.components is not None:
            Z = Z @ self.components
        return np.ascontiguousarray(Z, dtype=np.float32)

    def search(self, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The `k` nearest clips of each feature row: (squared distances, clip ids; -1: none)."""
        import faiss

        Z = self.embed(np.atleast_2d(X))
        if self.kind == "ivf":
            faiss.extract_index_ivf(self.index).nprobe = self.nprobe
        return self.index.search(Z, int(k))  # type: ignore[attr-defined]

    def save(self, root: Path, name: str) -> None:
        """Write both files atomically (the index first: a reader pairs them by `built_rows`)."""
        import faiss

        meta = {"kind": self.kind, "clips": self.clips, "built_rows": self.built_rows, "nprobe": self.nprobe}
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".faiss", dir=root)
        os.close(fd)
        try:
            faiss.write_index(self.index, tmp)
            os.replace(tmp, root / f"{name}{INDEX_SUFFIX}")
        finally:
            Path(tmp).unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".npz", dir=root)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    mean=self.mean,
                    scale=self.scale,
                    components=self.components if self.components is not None else np.zeros((0, 0), "f4"),
                    meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                )
            os.replace(tmp, root / f"{name}{META_SUFFIX}")
        finally:
            Path(tmp).unlink(missing_ok=True)

    @classmethod
    def load(cls, root: Path, name: str) -> SearchIndex | None:
        """The index stored next to matrix `name`, or None (none, or unreadable)."""
        import faiss

        index_path, meta_path = root / f"{name}{INDEX_SUFFIX}", root / f"{name}{META_SUFFIX}"
        try:
            with np.load(meta_path, allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes().decode())
                mean, scale, comps = z["mean"], z["scale"], z["components"]
            index = faiss.read_index(str(index_path))
        except (OSError, ValueError, KeyError, RuntimeError):
            return None
        if index.ntotal != meta["clips"]:
            return None  # the pair of files is from two builds
        return cls(
            mean=mean,
            scale=scale,
            components=comps if comps.size else None,
            index=index,
            kind=meta["kind"],
            clips=int(meta["clips"]),
            built_rows=int(meta["built_rows"]),
            nprobe=int(meta.get("nprobe", 0)),
        )


def is_fresh(index: SearchIndex | None, matrix: FeatureMatrix) -> bool:
    """Whether `index` was built from the matrix as it is (rows are only ever appended)."""
    return index is not None and index.built_rows == matrix.rows


def built_rows(root: Path, name: str) -> int | None:
    """The matrix rows the stored index of `name` was built from (None: no index), without
    reading the index itself."""
    try:
        with np.load(root / f"{name}{META_SUFFIX}", allow_pickle=False) as z:
            return int(json.loads(z["meta"].tobytes().decode())["built_rows"])
    except (OSError, ValueError, KeyError):
        return None


def _fit(X: np.ndarray, rows: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Mean, scale and PCA components (None at PCA_DIM values or fewer) from the rows `rows`."""
    S = np.asarray(X[rows], dtype=np.float32)
    mean = S.mean(axis=0, dtype=np.float64)
    std = S.std(axis=0, dtype=np.float64)
    scale = np.where(std > 1e-8, std, 1.0)
    components = None
    if X.shape[1] > PCA_DIM and len(rows) > PCA_DIM:
        from sklearn.decomposition import PCA

        S -= mean.astype(np.float32)
        S /= scale.astype(np.float32)
        pca = PCA(n_components=PCA_DIM, svd_solver="randomized", random_state=seed)
        pca.fit(S)
        components = np.ascontiguousarray(pca.components_.T, dtype=np.float32)
    return mean.astype(np.float32), scale.astype(np.float32), components


def build_index(
    matrix: FeatureMatrix, *, exact_max: int = EXACT_MAX, kind: str | None = None, seed: int = 0
) -> SearchIndex:
    """The search index of the matrix's live rows (`kind`: force "exact" or "ivf")."""
    import faiss

    X = matrix.array()
    live = np.flatnonzero(matrix.index["id"] >= 0)
    ids = matrix.index["id"][live].astype(np.int64)
    n = len(live)
    rng = np.random.default_rng(seed)
    size = min(n, FIT_SAMPLE, max(1000, FIT_VALUES // max(1, matrix.dim)))
    sample = np.sort(rng.choice(live, size=size, replace=False)) if n else live
    if n:
        mean, scale, components = _fit(X, sample, seed)
        matrix.release(int(sample.min()), int(sample.max()))
    else:
        mean = np.zeros(matrix.dim, np.float32)
        scale = np.ones(matrix.dim, np.float32)
        components = None
    index = SearchIndex(mean, scale, components, None, "exact", 0, matrix.rows)
    d = components.shape[1] if components is not None else matrix.dim
    kind = kind or ("exact" if n <= exact_max else "ivf")
    if kind == "exact":
        faiss_index = faiss.IndexIDMap2(faiss.IndexFlatL2(d))
    else:
        nlist = int(np.clip(NLIST_PER_SQRT * np.sqrt(max(n, 1)), 1, max(1, n // TRAIN_PER_LIST)))
        quantizer = faiss.IndexFlatL2(d)
        faiss_index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_L2)
        train = np.sort(rng.choice(live, size=min(n, nlist * TRAIN_PER_LIST), replace=False))
        parts = []
        for s in range(0, len(train), BUILD_CHUNK):
            rows = train[s : s + BUILD_CHUNK]
            parts.append(index.embed(X[rows]))
            matrix.release(int(rows.min()), int(rows.max()))
        faiss_index.train(np.concatenate(parts) if parts else np.zeros((0, d), np.float32))
        index.nprobe = max(1, round(nlist * NPROBE_SHARE))
    for s in range(0, n, BUILD_CHUNK):
        rows = live[s : s + BUILD_CHUNK]
        faiss_index.add_with_ids(index.embed(X[rows]), ids[s : s + BUILD_CHUNK])
        matrix.release(int(rows.min()), int(rows.max()))
    index.index, index.kind, index.clips = faiss_index, kind, int(faiss_index.ntotal)
    return index


def refresh_index(root: str | Path, name: str, *, exact_max: int = EXACT_MAX) -> bool:
    """Rebuild the index of the matrix `name` under `root` (its stored name) when its features
    changed since the last build: whether it built one. What the learning service runs after a round."""
    root = Path(root)
    try:
        meta = json.loads((root / f"{name}.json").read_text())
        dim, token = int(meta["dim"]), str(meta["token"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    matrix = FeatureMatrix(root, name, dim, token)
    try:
        if matrix.rows == 0 or built_rows(root, name) == matrix.rows:
            return False
        build_index(matrix, exact_max=exact_max).save(root, name)
        return True
    finally:
        matrix.close()
