"""Extracting a dataset's features: content hashes, cache hits, then Dask for the misses.

Files are hashed in the main process and looked up in the cache; only the misses are
computed, in chunks of files per task so that scheduling costs little next to openSMILE.
One worker (and no scheduler address) computes in this process: starting a cluster costs
seconds that a single worker cannot win back. More workers run on a Dask `LocalCluster`
of single-threaded processes, or on an existing cluster (`scheduler="tcp://host:8786"`,
whose workers must see the same paths). Large tables are written as a float32 `.npy` in
the cache folder and returned memory-mapped, so a pool bigger than RAM still works.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from listenloop.datasets import Dataset, read_table
from listenloop.errors import AudioError, ListenloopError
from listenloop.features.cache import FeatureCache, file_digest
from listenloop.features.registry import Extractor, get_extractor

#: Tables of at least this many bytes are built in a memory-mapped .npy instead of RAM.
MEMMAP_MIN_BYTES = 256 * 1024**2
#: Most files per Dask task: enough to amortise the per-task overhead, few enough to balance.
MAX_CHUNK = 64
#: With `workers=None`, fewer misses than this are computed in this process (no cluster).
AUTO_CLUSTER_MIN_FILES = 200
_IO_THREADS = 8

Job = tuple[str, str]  # (cache key, absolute path)
Result = tuple[str, "np.ndarray | str"]  # (cache key, features or the reason they are missing)


@dataclass
class FeatureTable:
    """Features of the dataset's files that could be read: row j is file `kept[j]` of the dataset."""

    X: np.ndarray  # float32, n_ok × d; a read-only memmap for large tables
    kept: np.ndarray  # int indices into the dataset's rows
    skipped: list[tuple[str, str]]  # (file, reason) for files that gave no features
    extractor: str
    seconds: float  # wall time of the extraction, in this process
    cached: int = 0  # rows read from the cache
    computed: int = 0  # rows computed in this run
    files: list[str] = field(default_factory=list)  # dataset file ids of the rows
    source: Extractor | None = field(default=None, repr=False)  # the extractor object

    def __len__(self) -> int:
        return len(self.kept)

    @functools.cached_property
    def names(self) -> list[str]:
        """Feature names (asked of the extractor when first needed: openSMILE's cost a config parse)."""
        if self.source is None:
            return [f"f{j}" for j in range(self.X.shape[1])]
        return list(self.source.names)

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame with a `file` column followed by one column per feature."""
        frame = pd.DataFrame(np.asarray(self.X), columns=self.names)
        frame.insert(0, "file", self.files)
        return frame

    def save(self, path: str | Path) -> list[Path]:
        """Write the table: `.csv` with a `file` column, or `.npy` (float32) with the file ids in
        `<stem>.files.csv` and the feature names in `<stem>.names.txt` beside it. Returns the paths."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            self.to_frame().to_csv(path, index=False, float_format="%.9g")
            return [path]
        if suffix == ".npy":
            np.save(path, np.asarray(self.X, dtype=np.float32))
            files = path.with_name(path.stem + ".files.csv")
            names = path.with_name(path.stem + ".names.txt")
            pd.DataFrame({"file": self.files}).to_csv(files, index=False)
            names.write_text("\n".join(self.names) + "\n")
            return [path, files, names]
        raise ListenloopError(f"{path}: unknown output format (use .csv or .npy)")


def files_dataset(root: str | Path) -> Dataset:
    """Every file listed in `root/labels.csv`, labelled or not: features need no labels."""
    root = Path(root)
    table = read_table(root)
    files = table["file"].str.strip().tolist()
    labels = table["label"].to_numpy(dtype=str) if "label" in table.columns else np.full(len(files), "")
    return Dataset(root, files, labels, table=table)


def extract_features(
    dataset: Dataset,
    extractor: str | Extractor,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: bool = True,
    chunk_size: int | None = None,
    memmap_min_bytes: int = MEMMAP_MIN_BYTES,
    log: Callable[[str], None] | None = None,
) -> FeatureTable:
    """Features of every file of `dataset` with `extractor` (a name or an Extractor).

    `workers`: processes to compute with (default: the CPUs available, or this process alone
    for fewer than AUTO_CLUSTER_MIN_FILES misses; 1 computes in this process); `scheduler`:
    the address of a running Dask scheduler to compute on instead. Unreadable,
    empty or non-audio files are skipped with a `skipped FILE: REASON` line (to `log`,
    default stderr) and listed in `skipped`. `use_cache=False` neither reads nor writes
    entries (large tables still go to `cache_dir`, memory-mapped).
    """
    start = time.perf_counter()
    ext = extractor if isinstance(extractor, Extractor) else get_extractor(extractor)
    if workers is not None and workers < 1:
        raise ListenloopError(f"--workers must be at least 1 (got {workers})")
    cache = FeatureCache(cache_dir)
    files = list(dataset.files)
    paths = [str(p) for p in dataset.paths()]
    n = len(paths)
    reasons: dict[int, str] = {}

    from tqdm.auto import tqdm

    bar = tqdm(total=n, disable=not progress, file=sys.stderr, unit="file", desc=ext.name, leave=False)
    emit = log or (lambda msg: bar.write(msg, file=sys.stderr))

    def skip(i: int, reason: str) -> None:
        reasons[i] = reason
        emit(f"skipped {files[i]}: {reason}")

    try:
        # 1. Content hashes (threads: hashlib and file reads release the GIL).
        digests = _map_threads(_digest_or_reason, paths)
        keys: dict[int, str] = {}
        for i, d in enumerate(digests):
            if d.startswith("!"):
                skip(i, d[1:])
                bar.update(1)
            else:
                keys[i] = cache.key(d, ext)

        # 2. Cache hits.
        store = _RowStore(n, ext.dim, cache.root, memmap_min_bytes)
        todo: dict[str, list[int]] = {}
        cached = 0
        if use_cache:
            order = list(keys)
            hits = _map_threads(lambda i: cache.get(keys[i], ext.dim), order)
            for i, vec in zip(order, hits, strict=True):
                if vec is None:
                    todo.setdefault(keys[i], []).append(i)
                else:
                    store.set(i, vec)
                    cached += 1
            bar.update(cached)
        else:
            for i, k in keys.items():
                todo.setdefault(k, []).append(i)

        # 3. Misses: each distinct content computed once.
        computed = 0
        if todo:
            jobs = [(k, paths[idx[0]]) for k, idx in todo.items()]
            with closing(_compute(ext, jobs, workers, scheduler, chunk_size)) as results:
                for key, out in results:
                    for i in todo[key]:
                        if isinstance(out, str):
                            skip(i, out)
                        else:
                            store.set(i, out)
                            computed += 1
                    if use_cache and not isinstance(out, str):
                        cache.put(key, out)
                    bar.update(len(todo[key]))
    finally:
        bar.close()

    kept = np.array(sorted(set(range(n)) - set(reasons)), dtype=np.int64)
    X = store.finish(kept, [keys[i] for i in kept], ext.cache_token())
    if reasons:
        emit(f"{len(reasons)} files skipped")
    return FeatureTable(
        X=X,
        kept=kept,
        skipped=[(files[i], reasons[i]) for i in sorted(reasons)],
        extractor=ext.name,
        seconds=time.perf_counter() - start,
        cached=cached,
        computed=computed,
        files=[files[i] for i in kept],
        source=ext,
    )


def _digest_or_reason(path: str) -> str:
    """sha256 of the file, or '!' + why it cannot be read."""
    try:
        return file_digest(path)
    except FileNotFoundError:
        return "!no such file"
    except IsADirectoryError:
        return "!a folder, not a file"
    except OSError as exc:
        return f"!cannot read ({exc.strerror or exc})"


def _map_threads(func: Callable, items: list) -> list:
    if len(items) < 64:
        return [func(x) for x in items]
    with ThreadPoolExecutor(_IO_THREADS) as pool:
        return list(pool.map(func, items, chunksize=16))


def extract_one(ext: Extractor, path: str) -> np.ndarray | str:
    """Features of one file, or the reason there are none (decoding error, bad output)."""
    try:
        signal, sr = _load(path, ext.sample_rate)
        vec = np.asarray(ext.extract(signal, sr), dtype=np.float32).ravel()
    except AudioError as exc:  # its message starts with the path: keep the reason alone
        msg = str(exc).replace(f"Error opening '{path}': ", "")
        return msg[len(path) + 2 :] if msg.startswith(f"{path}: ") else msg
    except Exception as exc:  # one odd file must not stop a long run: report it, go on
        return f"extraction failed ({type(exc).__name__}: {exc})"
    if ext.dim is not None and vec.size != ext.dim:
        return f"extractor gave {vec.size} values, expected {ext.dim}"
    bad = int(np.size(vec) - np.count_nonzero(np.isfinite(vec)))
    if bad:
        return f"{bad} feature values are not finite"
    return vec


def _load(path: str, sample_rate: int | None) -> tuple[np.ndarray, int]:
    from listenloop.audio.io import load_audio

    if not os.path.exists(path):
        raise AudioError(f"{path}: no such file")
    return load_audio(path, sample_rate)


def extract_chunk(ext: Extractor, jobs: list[Job]) -> list[Result]:
    """Worker task: features (or reasons) of a chunk of (key, path) jobs."""
    return [(key, extract_one(ext, path)) for key, path in jobs]


def default_workers() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


if TYPE_CHECKING:
    from distributed import LocalCluster


def _compute(
    ext: Extractor, jobs: list[Job], workers: int | None, scheduler: str | None, chunk_size: int | None
) -> Iterator[Result]:
    """Results for `jobs` as they complete: in this process, or on Dask."""
    if workers is None:
        # Starting a cluster costs seconds: not worth it for a few files.
        workers = default_workers() if len(jobs) >= AUTO_CLUSTER_MIN_FILES else 1
    if chunk_size is None:
        chunk_size = max(1, min(MAX_CHUNK, math.ceil(len(jobs) / (4 * workers))))
    chunks = [jobs[i : i + chunk_size] for i in range(0, len(jobs), chunk_size)]
    n_workers = min(workers, len(chunks))
    if scheduler is None and n_workers <= 1:
        for chunk in chunks:
            yield from extract_chunk(ext, chunk)
        return
    yield from _compute_dask(ext, chunks, n_workers, scheduler)


def _compute_dask(
    ext: Extractor, chunks: list[list[Job]], n_workers: int, scheduler: str | None
) -> Iterator[Result]:
    """Run the chunks on a local cluster (closed afterwards) or on the cluster at `scheduler`."""
    _quiet_dask()
    import dask
    from distributed import Client, as_completed

    cluster = client = None
    try:
        if scheduler is not None:
            try:
                client = Client(scheduler, timeout="10s", set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ListenloopError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from exc
        else:
            # Forked workers inherit the imported openSMILE and numpy: on FSDD two workers took
            # 23.9 s against 29.5 s when spawned (one worker: 44 s). Kept where fork is safe (Linux).
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            with dask.config.set({"distributed.worker.multiprocessing-method": method}):
                cluster = local_cluster(n_workers, ONE_THREAD_ENV)
            client = Client(cluster, set_as_default=False)
        futures = [client.submit(extract_chunk, ext, chunk, pure=False) for chunk in chunks]
        for fut in as_completed(futures, loop=client.loop):
            results = fut.result()
            fut.release()
            yield from results
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


ONE_THREAD_ENV = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
"""Worker environment: one BLAS/OpenMP thread per single-threaded worker process."""


def local_cluster(n_workers: int, env: dict[str, str], preload: list[str] | None = None) -> LocalCluster:
    """A local cluster of single-threaded worker processes, quiet and without a dashboard.

    `preload` names modules each worker imports at start (the learning service nices them).
    """
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        # no dashboard, and its HTTP server on a free port: no "8787 in use" warning
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.ERROR,
        env=env,
        preload=preload or [],
    )


def _quiet_dask() -> None:
    """Dask logs every worker start, stop and heartbeat at INFO: keep errors only."""
    for name in ("distributed", "dask", "tornado", "bokeh"):
        logging.getLogger(name).setLevel(logging.ERROR)


class _RowStore:
    """Collects rows by dataset index: in RAM, or in a memory-mapped .npy for large tables."""

    def __init__(self, n: int, dim: int | None, root: Path, memmap_min_bytes: int) -> None:
        self.n, self.dim, self.root = n, dim, root
        self.rows: dict[int, np.ndarray] = {}
        self.array: np.ndarray | None = None
        self.tmp: Path | None = None
        if dim is not None and n * dim * 4 >= memmap_min_bytes and n > 0:
            (root / "tables").mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".table.", suffix=".npy", dir=root / "tables")
            os.close(fd)
            self.tmp = Path(name)
            self.array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.float32, shape=(n, dim))
        elif dim is not None:
            self.array = np.zeros((n, dim), dtype=np.float32)

    def set(self, i: int, vec: np.ndarray) -> None:
        if self.array is None:
            self.rows[i] = vec
        else:
            self.array[i] = vec

    def finish(self, kept: np.ndarray, keys: list[str], token: str) -> np.ndarray:
        """The kept rows in order; a memmap of `tables/<hash of the rows' keys>.npy` if large."""
        if self.array is None:
            dim = self.dim or (len(next(iter(self.rows.values()))) if self.rows else 0)
            if not len(kept):
                return np.zeros((0, dim), dtype=np.float32)
            return np.stack([self.rows[i] for i in kept]).astype(np.float32, copy=False)
        if self.tmp is None:
            return self.array if len(kept) == self.n else self.array[kept]
        digest = hashlib.sha256("\n".join([token, *keys]).encode()).hexdigest()
        final = self.root / "tables" / f"{digest[:32]}.npy"
        try:
            if len(kept) == self.n:
                self.array.flush()
                del self.array
                os.replace(self.tmp, final)
            else:
                fd, name = tempfile.mkstemp(prefix=".table.", suffix=".npy", dir=self.root / "tables")
                os.close(fd)
                out = np.lib.format.open_memmap(
                    name, mode="w+", dtype=np.float32, shape=(len(kept), self.dim)
                )
                step = max(1, (64 * 1024**2) // (4 * max(1, self.dim or 1)))
                for s in range(0, len(kept), step):
                    out[s : s + step] = self.array[kept[s : s + step]]
                out.flush()
                del out, self.array
                os.replace(name, final)
        finally:
            self.tmp.unlink(missing_ok=True)
        return np.load(final, mmap_mode="r")
