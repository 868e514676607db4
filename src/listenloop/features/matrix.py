"""A project's features as one memory-mapped float32 matrix on disk, kept up to date incrementally.

A learning round used to hash every clip's audio, open one cache file per clip and stack the
vectors in memory: at a million ComParE clips that is a million file opens and 25.5 GB of RAM
per round. Here each project (and feature set) has one matrix file that a round opens
memory-mapped; a round adds the rows of clips it has not seen (from the content-addressed
cache, or extracted) and reads the rest in place. Clips are matched by id and by their cache
key (content digest, as stored in `clips.sha256`, plus the extractor), so a clip whose
content changed gets a new row.

Files under the matrix folder, for a matrix `NAME`:
- `NAME.f32`: rows of `dim` little-endian float32 values, in the order they were added;
- `NAME.index.npy`: one record per row: the clip id (-1: replaced by a later row) and the
  row's cache key (32 bytes). It is replaced atomically after the rows it counts are on disk,
  so a crash mid-append leaves the previous matrix (bytes past its rows are overwritten later);
- `NAME.json`: the width and the extractor's cache token.

Reads go through `MatrixRows`, a `LazyRows` that drops the pages it touched from the process
after each read (the page cache keeps them), so a sweep over the whole matrix keeps the
process's resident memory at one chunk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import tempfile
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from listenloop.features.cache import FeatureCache
from listenloop.features.registry import Extractor, get_extractor
from listenloop.rows import LazyRows

INDEX_DTYPE = np.dtype([("id", "<i8"), ("key", "S32")])
_PAGE = mmap.PAGESIZE


class FeatureMatrix:
    """The matrix `name` under `root` (created empty on first use) for vectors of `dim` values.

    `token` names what the values are (the extractor's cache token): a matrix stored under the
    same name with another token or width is discarded and rebuilt.
    """

    def __init__(self, root: str | Path, name: str, dim: int, token: str) -> None:
        self.root = Path(root)
        self.name = name
        self.dim = int(dim)
        self.token = token
        self.data_path = self.root / f"{name}.f32"
        self.index_path = self.root / f"{name}.index.npy"
        self.meta_path = self.root / f"{name}.json"
        self.root.mkdir(parents=True, exist_ok=True)
        self.index = self._load_index()
        self._map: mmap.mmap | None = None
        self._array: np.ndarray | None = None

    @property
    def rows(self) -> int:
        """Rows stored (live and replaced)."""
        return len(self.index)

    @property
    def live(self) -> int:
        """Rows that still belong to a clip."""
        return int(np.count_nonzero(self.index["id"] >= 0))

    def _load_index(self) -> np.ndarray:
        empty = np.zeros(0, dtype=INDEX_DTYPE)
        try:
            meta = json.loads(self.meta_path.read_text())
            index = np.load(self.index_path, allow_pickle=False)
        except (OSError, ValueError):
            return empty
        size = self.data_path.stat().st_size if self.data_path.exists() else -1
        ok = (
            meta.get("dim") == self.dim
            and meta.get("token") == self.token
            and index.dtype == INDEX_DTYPE
            and size >= len(index) * self.dim * 4
        )
        return index if ok else empty

    def locate(self, ids: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """The row of each clip (`ids`, with cache keys `keys` as 32-byte strings); -1 where the
        matrix has no row for it, or only one of other content."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.full(len(ids), -1, dtype=np.int64)
        live = np.flatnonzero(self.index["id"] >= 0)
        if not len(live) or not len(ids):
            return out
        by_id = live[np.argsort(self.index["id"][live], kind="stable")]
        sorted_ids = self.index["id"][by_id]
        at = np.minimum(np.searchsorted(sorted_ids, ids), len(by_id) - 1)
        row = by_id[at]
        found = (sorted_ids[at] == ids) & (self.index["key"][row] == np.asarray(keys, dtype="S32"))
        out[found] = row[found]
        return out

    def append(self, ids: np.ndarray, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Add rows for clips `ids` (cache keys `keys`); the clips' earlier rows are marked replaced.
        Returns the new rows' numbers. The index changes only once the values are on disk."""
        return self.extend([(ids, keys, values)])

    def extend(self, batches: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
        """`append` for several batches of (ids, keys, values), each written as it comes, with one
        index update at the end (a matrix built from scratch rewrites its index once)."""
        start = self.rows
        self._unmap()
        added = []
        with open(self.data_path, "ab" if self.data_path.exists() else "wb") as f:
            f.truncate(start * self.dim * 4)  # bytes of an append that a crash cut short
            f.seek(start * self.dim * 4)
            for ids, keys, values in batches:
                ids = np.asarray(ids, dtype=np.int64)
                f.write(np.ascontiguousarray(values, dtype="<f4").reshape(len(ids), self.dim).tobytes())
                part = np.zeros(len(ids), dtype=INDEX_DTYPE)
                part["id"], part["key"] = ids, np.asarray(keys, dtype="S32")
                added.append(part)
            f.flush()
            os.fsync(f.fileno())
        new = np.concatenate(added) if added else np.zeros(0, dtype=INDEX_DTYPE)
        index = self.index.copy()
        index["id"][np.isin(index["id"], new["id"])] = -1
        self._save_index(np.concatenate([index, new]))
        return np.arange(start, start + len(new), dtype=np.int64)

    def _save_index(self, index: np.ndarray) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.name}.", suffix=".npy", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, index, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.index_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.meta_path.write_text(json.dumps({"dim": self.dim, "token": self.token}))
        self.index = index

    def array(self) -> np.ndarray:
        """Every stored row, read-only and memory-mapped (nothing is read until used)."""
        if self._array is None:
            if self.rows == 0:
                return np.zeros((0, self.dim), dtype=np.float32)
            with open(self.data_path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), self.rows * self.dim * 4, access=mmap.ACCESS_READ)
            self._array = np.frombuffer(self._map, dtype="<f4").reshape(self.rows, self.dim)
        return self._array

    def release(self, first: int, last: int) -> None:
        """Drop rows first..last from this process's memory (the kernel's page cache keeps them)."""
        if self._map is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        start = (first * self.dim * 4) // _PAGE * _PAGE
        stop = min(len(self._map), (last + 1) * self.dim * 4)
        if stop > start:
            self._map.madvise(mmap.MADV_DONTNEED, start, stop - start)

    def _unmap(self) -> None:
        self._array = None
        if self._map is not None:
            with contextlib.suppress(BufferError):  # an array still uses it: the GC unmaps it later
                self._map.close()
            self._map = None

    def close(self) -> None:
        """Unmap the file."""
        self._unmap()

    def view(self, rows: np.ndarray) -> MatrixRows:
        """The stored rows `rows` as a lazy matrix (row i of the view is stored row rows[i])."""
        return MatrixRows(self, rows)


class MatrixRows(LazyRows):
    """Rows of a FeatureMatrix picked by `rows`, read on demand; pages are released after each read."""

    def __init__(self, matrix: FeatureMatrix, rows: np.ndarray) -> None:
        self.matrix = matrix
        self.rows = np.asarray(rows, dtype=np.int64)
        super().__init__(len(self.rows), matrix.dim)

    def _take(self, rows: np.ndarray) -> np.ndarray:
        stored = self.rows[rows]
        if not len(stored):
            return np.zeros((0, self.shape[1]), dtype=np.float32)
        out = self.matrix.array()[stored]  # fancy indexing copies
        self.matrix.release(int(stored.min()), int(stored.max()))
        return out


def key_bytes(keys: list[str] | np.ndarray) -> np.ndarray:
    """Hex cache keys (64 characters) as the matrix's 32-byte keys."""
    return np.array([bytes.fromhex(k) for k in keys], dtype="S32")


#: Rows gathered before they are appended to the matrix: bounds the memory of filling a new one.
APPEND_ROWS = 4096


@dataclass
class PoolFeatures:
    """The features of a round's clips: row j of `X` belongs to clip `kept[j]` (a position in the
    round's lists); `skipped` are (position, reason) of clips that gave none."""

    X: MatrixRows
    kept: np.ndarray
    skipped: list[tuple[int, str]]
    reused: int  # rows the matrix already held
    cached: int  # rows added from the per-file cache
    computed: int  # rows extracted now
    matrix: FeatureMatrix = field(repr=False)


def pool_features(
    root: str | Path,
    clip_ids: Sequence[int],
    paths: Sequence[str],
    digests: Sequence[str | None] | None,
    extractor: str | Extractor,
    *,
    matrix_dir: str | Path,
    name: str,
    cache_dir: str | Path | None = None,
    workers: int | None = 1,
    scheduler: str | None = None,
) -> PoolFeatures:
    """Features of the clips `clip_ids` (audio at `root/paths[i]`, content sha256 `digests[i]`)
    from the matrix `name` in `matrix_dir`, adding rows for the clips it lacks: from the per-file
    cache, else extracted (on Dask with `scheduler`, or `workers` processes) and cached.

    `digests` are the stored content hashes (`clips.sha256`): audio is read only for clips that
    need extracting. Without them (None, or a None entry) that clip's file is hashed.
    """
    from listenloop.features.extraction import _compute, _digest_or_reason, _map_threads

    ext = extractor if isinstance(extractor, Extractor) else get_extractor(extractor)
    cache = FeatureCache(cache_dir)
    ids = np.asarray(clip_ids, dtype=np.int64)
    files = [str(Path(root) / p) for p in paths]
    n = len(ids)
    given = list(digests) if digests is not None else [None] * n
    missing = [i for i, d in enumerate(given) if not d]
    for i, d in zip(missing, _map_threads(_digest_or_reason, [files[i] for i in missing]), strict=True):
        given[i] = d
    reasons: dict[int, str] = {i: str(d)[1:] for i, d in enumerate(given) if str(d).startswith("!")}
    good = np.array([i for i in range(n) if i not in reasons], dtype=np.int64)
    hex_keys = cache.keys([str(given[i]) for i in good], ext)
    keys = key_bytes(hex_keys)
    token = ext.cache_token()
    matrix_name = stored_name(name, token)
    _drop_others(Path(matrix_dir), name, matrix_name)
    matrix: FeatureMatrix | None = None
    dim = ext.dim or _stored_dim(Path(matrix_dir), matrix_name)
    if dim is not None:
        matrix = FeatureMatrix(matrix_dir, matrix_name, dim, token)
    rows = np.full(n, -1, dtype=np.int64)
    if matrix is not None and len(good):
        rows[good] = matrix.locate(ids[good], keys)
    reused = int(np.count_nonzero(rows >= 0))
    todo = [int(j) for j in np.flatnonzero(rows[good] < 0)]  # positions into `good`
    pending: list[tuple[int, np.ndarray]] = []  # (position into good, vector) not yet appended

    def flush() -> None:
        nonlocal matrix
        if not pending:
            return
        if matrix is None:
            matrix = FeatureMatrix(matrix_dir, matrix_name, len(pending[0][1]), token)
        at = np.array([j for j, _ in pending], dtype=np.int64)
        added = matrix.append(ids[good[at]], keys[at], np.stack([v for _, v in pending]))
        rows[good[at]] = added
        pending.clear()

    # cache hits, a batch at a time (threads: file reads release the GIL)
    cached = 0
    misses: dict[str, list[int]] = {}
    for s in range(0, len(todo), APPEND_ROWS):
        batch = todo[s : s + APPEND_ROWS]
        for j, vec in zip(batch, _map_threads(lambda j: cache.get(hex_keys[j], dim), batch), strict=True):
            if vec is None:
                misses.setdefault(hex_keys[j], []).append(j)
            else:
                pending.append((j, vec))
                cached += 1
        flush()
    computed = 0
    if misses:
        jobs = [(k, files[good[js[0]]]) for k, js in misses.items()]
        with closing(_compute(ext, jobs, workers, scheduler, None)) as results:
            for key, out in results:
                for j in misses[key]:
                    if isinstance(out, str):
                        reasons[int(good[j])] = out
                    else:
                        pending.append((j, out))
                        computed += 1
                if not isinstance(out, str):
                    cache.put(key, out)
                if len(pending) >= APPEND_ROWS:
                    flush()
        flush()
    kept = np.flatnonzero(rows >= 0)
    if matrix is None:  # nothing to read (no clips, or none gave features) and no width known
        matrix = FeatureMatrix(matrix_dir, matrix_name, dim or 1, token)
    return PoolFeatures(
        X=matrix.view(rows[kept]),
        kept=kept,
        skipped=sorted(reasons.items()),
        reused=reused,
        cached=cached,
        computed=computed,
        matrix=matrix,
    )


def stored_name(name: str, token: str) -> str:
    """The files' name of matrix `name` for the extractor with cache token `token`."""
    return f"{name}-{hashlib.sha256(token.encode()).hexdigest()[:16]}"


def _drop_others(root: Path, name: str, keep: str) -> None:
    """Delete the matrices of `name` for other extractors (the project's feature set changed):
    at a million ComParE clips each is 25.5 GB that nothing reads any more."""
    for path in root.glob(f"{name}-*"):
        if not path.name.startswith(f"{keep}.") and path.name.split(".", 1)[0].count("-") == keep.count("-"):
            path.unlink(missing_ok=True)


def _stored_dim(root: Path, name: str) -> int | None:
    """The width recorded for the matrix `name`, if it exists."""
    try:
        return int(json.loads((root / f"{name}.json").read_text())["dim"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
