"""`listenloop bench round`: one learning round on a huge synthetic pool while annotators work.

Protocol: a SQLite database with a classification project of `clips` clips (rows inserted
directly: no audio, each with a made-up stored sha256) and `labels` seed labels spread over
`classes` classes, and its consolidated feature matrix (`features/matrix.py`) written in
chunks: float32 rows as wide as `feature_set` (ComParE's 6,373 values by default: 25.5 GB
for a million clips) drawn around one centre per class, so the model is unsure of part of the pool. A
model run is recorded for it, so the project is not due yet. Then `listenloop serve` starts
on loopback (its learning service in its own process, as in production) with a second,
small project of the demo's clips that `annotators` users answer (next, then answer, then a
pause of `think` s) for the whole run. After `warmup` s of load alone, `retrain_every` more
seed labels make the big project due; the service runs its round. Reported: the round's
wall time (from the moment it was due until its model run was stored) and the service's own
figure (read, compute, write), the peak resident memory (VmHWM) of the learning process and
of its Dask worker, and request latencies of the load before and during the round: its
p99 and the longest any request waited. The work folder is deleted at the end (`keep`: not).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from listenloop.errors import ListenloopError

BENCH_PROJECT = "bench round: big pool"
CHUNK = 4096  # rows generated and appended at a time (100 MB of ComParE rows)


@dataclass
class RoundRow:
    """What one measured round did and cost."""

    clips: int
    dim: int
    labels: int
    matrix_gb: float
    generate_s: float
    round_wall_s: float  # from due to the model run stored
    round_service_s: float | None  # the service's own figure (read, features, fit, rank), before writing
    learning_peak_rss_mb: float | None  # VmHWM of the learning service's process
    worker_peak_rss_mb: float | None  # VmHWM of its Dask worker (features, fit, scoring)
    requests_before: int
    p99_before_ms: float | None
    max_before_ms: float | None
    requests_during: int
    p99_during_ms: float | None
    max_during_ms: float | None
    cold_start: bool | None = None
    score: float | None = None
    skipped: int | None = None  # clips the round found no features for (none: every row was in the matrix)


def _p99(values: list[float]) -> float | None:
    if len(values) < 100:
        return round(1000 * max(values), 1) if values else None
    return round(1000 * statistics.quantiles(values, n=100)[98], 1)


def build_project(
    db_url: str,
    data: Path,
    *,
    clips: int,
    feature_set: str,
    labels: int,
    classes: int,
    retrain_every: int,
    seed: int,
) -> tuple[int, list[tuple[int, str]]]:
    """The big project, its clips and its feature matrix: (project id, the (clip id, label) seeds
    held back for `make_due`)."""
    from sqlalchemy import insert, update

    from listenloop.bench.serve import OWNER, OWNER_PASSWORD
    from listenloop.engine.accounts import Principal, create_user, hash_password
    from listenloop.engine.config import ProjectConfig
    from listenloop.engine.projects import create_project
    from listenloop.features.cache import FeatureCache
    from listenloop.features.matrix import FeatureMatrix, key_bytes, stored_name
    from listenloop.features.registry import get_extractor
    from listenloop.store.database import Database
    from listenloop.store.models import Clip, ModelRun, Project, utcnow

    rng = np.random.default_rng(seed)
    names = [f"c{k}" for k in range(classes)]
    db = Database(db_url)
    db.upgrade()
    with db.write() as s:
        owner = create_user(s, OWNER, hash_password(OWNER_PASSWORD), "owner")
        body = {"name": BENCH_PROJECT, "task_type": "classification", "classes": names}
        body |= {"feature_set": feature_set, "learner": "logreg", "retrain_every": retrain_every}
        project = create_project(s, Principal(owner.id, OWNER, "owner"), ProjectConfig(**body))
        pid = project.id
    seeded = set(rng.choice(clips, size=labels + retrain_every, replace=False).tolist())
    truth = rng.integers(classes, size=clips)
    ext = get_extractor(feature_set)
    dim = int(ext.dim)
    token = ext.cache_token()
    cache = FeatureCache(data / "features")
    matrix = FeatureMatrix(data / "features" / "matrices", stored_name(f"project-{pid}", token), dim, token)
    centres = (rng.standard_normal((classes, dim)) * 0.15).astype(np.float32)
    # Noise from two fixed random blocks, rows drawn at random from each and summed: distinct rows
    # at a fraction of the cost of drawing 6.4 billion normal numbers on a small machine.
    blocks = rng.standard_normal((2, CHUNK, dim), dtype=np.float32) * np.float32(0.7)
    now = utcnow()
    first_id = 1 + _max_clip_id(db)

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for lo in range(0, clips, CHUNK):
            yield _chunk(lo, min(clips, lo + CHUNK))

    def _chunk(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = np.arange(first_id + lo, first_id + hi, dtype=np.int64)
        shas = [hashlib.sha256(f"bench clip {pid} {k}".encode()).hexdigest() for k in range(lo, hi)]
        rows = [
            {
                "id": int(cid),
                "project_id": pid,
                "file_name": f"clip{k:07d}.wav",
                "sha256": sha,
                "path": f"audio/{sha[:2]}/{sha}.wav",
                "size_bytes": 64000,
                "duration": 2.0,
                "sample_rate": 16000,
                "status": "queued",
                "rank": float(r),
                "created_at": now,
                "updated_at": now,
            }
            for k, cid, sha, r in zip(range(lo, hi), ids, shas, rng.random(hi - lo), strict=True)
        ]
        with db.write() as s:
            s.execute(insert(Clip), rows)
        values = blocks[0][rng.integers(CHUNK, size=hi - lo)]
        values += blocks[1][rng.integers(CHUNK, size=hi - lo)]
        values += centres[truth[lo:hi]]
        return ids, key_bytes(cache.keys(shas, ext)), values

    matrix.extend(batches())
    matrix.close()
    order = sorted(seeded)
    first, later = order[:labels], order[labels:]
    with db.write() as s:
        conn = s.connection()
        for k in first:
            conn.execute(update(Clip).where(Clip.id == first_id + k).values(seed_label=names[truth[k]]))
        conn.execute(update(Project).where(Project.id == pid).values(clips_count=clips, labels_count=labels))
        # a round "already ran" on these labels: the project waits for `retrain_every` more
        s.add(
            ModelRun(project_id=pid, labels=labels, metric="uar", strategy="margin", clips=clips, seconds=0.0)
        )
    db.dispose()
    return pid, [(first_id + k, names[truth[k]]) for k in later]


def _max_clip_id(db: Any) -> int:
    from sqlalchemy import func, select

    from listenloop.store.models import Clip

    with db.read() as s:
        return int(s.scalar(select(func.max(Clip.id))) or 0)


def make_due(db_path: Path, pid: int, seeds: list[tuple[int, str]]) -> None:
    """New seed labels (`retrain_every` of them): the service's next poll finds the project due."""
    with contextlib.closing(sqlite3.connect(db_path, timeout=30)) as conn, conn:
        conn.executemany("UPDATE clips SET seed_label = ? WHERE id = ?", [(lab, cid) for cid, lab in seeds])
        conn.execute("UPDATE projects SET labels_count = labels_count + ? WHERE id = ?", (len(seeds), pid))


def _runs(db_path: Path, pid: int) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)) as conn:
        return conn.execute(
            "SELECT id, seconds, cold_start, score, skipped FROM model_runs WHERE project_id = ? ORDER BY id",
            (pid,),
        ).fetchall()


def _hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class _Load:
    """Annotators looping next -> answer -> pause on one project, in a thread, with every latency."""

    def __init__(self, base: str, pid: int, tokens: list[str], classes: list[str], think: float) -> None:
        self.base, self.pid, self.tokens, self.classes, self.think = base, pid, tokens, classes, think
        self.samples: list[tuple[float, float]] = []  # (monotonic start, seconds)
        self.errors: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def between(self, t0: float, t1: float) -> list[float]:
        return [d for t, d in self.samples if t0 <= t < t1]

    async def _run(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=len(self.tokens) + 4)
        async with httpx.AsyncClient(base_url=self.base, timeout=120, limits=limits) as c:
            await asyncio.gather(*(self._annotator(c, tok) for tok in self.tokens))

    async def _annotator(self, c: Any, tok: str) -> None:
        import httpx

        h = {"Authorization": f"Bearer {tok}"}
        rng = random.Random(tok)
        while not self._stop.is_set():
            try:
                t = time.monotonic()
                r = await c.get(f"/api/v1/projects/{self.pid}/next", headers=h)
                self.samples.append((t, time.monotonic() - t))
                if r.status_code != 200:
                    self.errors[f"next {r.status_code}"] = self.errors.get(f"next {r.status_code}", 0) + 1
                    await asyncio.sleep(0.2)
                    continue
                body = {"answer": rng.choice(self.classes)}
                t = time.monotonic()
                r = await c.post(f"/api/v1/tasks/{r.json()['task_id']}/answer", headers=h, json=body)
                self.samples.append((t, time.monotonic() - t))
                if r.status_code != 201:
                    self.errors[f"answer {r.status_code}"] = self.errors.get(f"answer {r.status_code}", 0) + 1
                await asyncio.sleep(self.think)
            except httpx.HTTPError as exc:
                self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
                await asyncio.sleep(0.2)


LEARNING_ENV = "LISTENLOOP_LEARNING"


def _inline_round(url: str, data: str, pid: int, out: Any) -> None:
    """A child process's one round of project `pid`, at normal priority, in the process itself
    (LearningService inline); sends its peak resident memory (MB) back through `out`."""
    from listenloop.engine.learning.service import LearningService
    from listenloop.store.database import Database

    db = Database(url)
    outcome = LearningService(db, Path(data), inline=True).run_project(pid)
    db.dispose()
    if outcome.state != "ran":
        raise ListenloopError(f"the round did not run: {outcome.state} {outcome.error or ''}")
    out.send(_hwm_mb(os.getpid()))


def _start_inline_round(url: str, data: Path, pid: int) -> tuple[Any, Any]:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    reader, writer = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_inline_round, args=(url, str(data), pid, writer), name="bench-round")
    proc.start()
    return proc, reader


def _learning_processes(server_pid: int) -> tuple[int | None, list[int]]:
    """(the learning service's process, its Dask worker processes) in the server's tree: the
    server's spawned child, and that child's spawned children."""
    import psutil

    def spawned(proc: Any) -> bool:
        with contextlib.suppress(psutil.Error):
            return "spawn_main" in " ".join(proc.cmdline())
        return False

    try:
        children = psutil.Process(server_pid).children()
    except psutil.NoSuchProcess:
        return None, []
    for child in children:
        if spawned(child):
            with contextlib.suppress(psutil.Error):
                return child.pid, [p.pid for p in child.children(recursive=True) if spawned(p)]
    return None, []


def run_round_bench(
    *,
    clips: int = 1_000_000,
    feature_set: str = "compare",
    labels: int = 1000,
    classes: int = 3,
    retrain_every: int = 20,
    annotators: int = 8,
    think: float = 0.25,
    warmup: float = 20.0,
    timeout: float = 3600.0,
    inline: bool = False,
    workdir: Path | None = None,
    keep: bool = False,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[RoundRow, dict[str, int]]:
    """Build the pool, start the server and the load, make the round due, measure it; also the
    load's error counts (non-2xx codes and client errors)."""
    import httpx

    from listenloop.bench.serve import OWNER, OWNER_PASSWORD, Server, clips_zip, token_of
    from listenloop.demo import DEMO_DIR

    say = progress or (lambda _line: None)
    from listenloop.features.registry import get_extractor

    dim = get_extractor(feature_set).dim
    if dim is None:
        raise ListenloopError(f"feature set {feature_set!r} does not know its width before extracting")
    need = clips * dim * 4
    base_dir = Path(workdir) if workdir else Path(tempfile.gettempdir())
    base_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(base_dir).free
    if need > free - 2 * 1024**3:
        have = f"{base_dir} has {free / 1e9:.1f} GB free"
        raise ListenloopError(f"the pool needs {need / 1e9:.1f} GB on disk; {have}")
    work = Path(tempfile.mkdtemp(prefix="listenloop-bench-round-", dir=base_dir))
    server = load = child = None
    try:
        data = work / "data"
        data.mkdir()
        db_path = data / "listenloop.db"
        url = f"sqlite:///{db_path}"
        say(f"building {clips:,} clips x {dim} float32 ({need / 1e9:.1f} GB) in {work} ...")
        t0 = time.perf_counter()
        shape = {"clips": clips, "feature_set": feature_set, "labels": labels, "classes": classes}
        pid, seeds = build_project(url, data, **shape, retrain_every=retrain_every, seed=seed)
        generate_s = time.perf_counter() - t0
        say(f"built in {generate_s:.0f} s; starting the server")
        if inline:  # the server without its learning service: the round runs in a process of ours
            os.environ[LEARNING_ENV] = "0"
        try:
            server = Server(url, data, 1, work / "server.log")
        finally:
            os.environ.pop(LEARNING_ENV, None)
        server.wait(300)
        blob, digits = clips_zip(DEMO_DIR / "recordings")
        with httpx.Client(base_url=server.base, timeout=300) as c:
            token = token_of(c, OWNER, OWNER_PASSWORD)
            oh = {"Authorization": f"Bearer {token}"}
            body = {"name": "bench round: load", "task_type": "classification", "classes": digits}
            body |= {"feature_set": "mfcc", "retrain_every": 10**6}  # one round, before the measured one
            r = c.post("/api/v1/projects", headers=oh, json=body)
            r.raise_for_status()
            small = int(r.json()["id"])
            files = {"archive": ("clips.zip", blob, "application/zip")}
            c.post(f"/api/v1/projects/{small}/clips", headers=oh, files=files).raise_for_status()
            tokens = []
            for i in range(annotators):
                user, pw = f"round{i}", f"pw-round-{i}-{seed}"
                c.post("/api/v1/users", json={"username": user, "password": pw}).raise_for_status()
                tokens.append(token_of(c, user, pw))
        end = time.monotonic() + 600
        while not inline and not _runs(db_path, small) and time.monotonic() < end:  # its first round
            time.sleep(1)
        load = _Load(server.base, small, tokens, digits, think)
        load.start()
        say(f"{annotators} annotators on the small project; {warmup:.0f} s of load alone ...")
        time.sleep(warmup)
        before_runs = len(_runs(db_path, pid))
        t_due = time.monotonic()
        make_due(db_path, pid, seeds)
        child = _start_inline_round(url, data, pid) if inline else None
        say("the big project is due; waiting for its round ...")
        runs: list[tuple[Any, ...]] = []
        while time.monotonic() - t_due < timeout:
            runs = _runs(db_path, pid)
            if len(runs) > before_runs:
                break
            if child is not None and not child[0].is_alive() and len(_runs(db_path, pid)) == before_runs:
                raise ListenloopError(f"the round's process ended with code {child[0].exitcode}")
            if server.proc.poll() is not None:
                raise ListenloopError("the server exited during the round (see its log)")
            time.sleep(0.5)
        else:
            raise ListenloopError(f"no round within {timeout:.0f} s")
        t_done = time.monotonic()
        if child is not None:  # the round ran in the child itself: no separate worker
            child[0].join(120)
            learning_peak = child[1].recv() if child[1].poll(5) else None
            worker_peak = None
        else:
            service, workers = _learning_processes(server.proc.pid)
            learning_peak = _hwm_mb(service) if service else None
            worker_peak = max((m for m in map(_hwm_mb, workers) if m is not None), default=None)
        load.stop()
        before = load.between(t_due - warmup, t_due)
        during = load.between(t_due, t_done)
        _, seconds, cold, score, skipped = runs[-1]
        row = RoundRow(
            clips=clips,
            dim=dim,
            labels=labels + retrain_every,
            matrix_gb=round(need / 1e9, 1),
            generate_s=round(generate_s, 1),
            round_wall_s=round(t_done - t_due, 1),
            round_service_s=seconds,
            learning_peak_rss_mb=learning_peak,
            worker_peak_rss_mb=worker_peak,
            requests_before=len(before),
            p99_before_ms=_p99(before),
            max_before_ms=round(1000 * max(before), 1) if before else None,
            requests_during=len(during),
            p99_during_ms=_p99(during),
            max_during_ms=round(1000 * max(during), 1) if during else None,
            cold_start=bool(cold),
            score=score,
            skipped=skipped,
        )
        return row, dict(load.errors)
    finally:
        if load is not None:
            load.stop()
        if child is not None and child[0].is_alive():
            child[0].kill()
        if server is not None:
            server.stop()
        if keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def format_row(row: RoundRow) -> str:
    """A few lines for the terminal."""
    return "\n".join(
        [
            f"pool: {row.clips:,} clips x {row.dim} float32 ({row.matrix_gb} GB), {row.labels} labels",
            f"round: {row.round_wall_s} s from due to stored (service's own figure {row.round_service_s} s)",
            f"peak resident memory: learning process {row.learning_peak_rss_mb} MB, "
            f"its Dask worker {row.worker_peak_rss_mb} MB",
            f"requests before the round: {row.requests_before}, p99 {row.p99_before_ms} ms, "
            f"max {row.max_before_ms} ms",
            f"requests during the round: {row.requests_during}, p99 {row.p99_during_ms} ms, "
            f"max {row.max_during_ms} ms",
        ]
    )


def row_dict(row: RoundRow) -> dict[str, Any]:
    """The row as JSON-ready values."""
    return asdict(row)
