"""Bulk import of a manifest (CSV or JSONL) of audio that already lives somewhere: a job that
runs in the background, in chunks, and can be resumed.

A manifest row names one clip: `uri` (also accepted as `file` or `path`), an optional `label`
(the clip becomes a seed), an optional `group`, and any other columns, all kept in `clips.meta`.
A uri is a local path (absolute, or relative to the job's base folder; `file://` too) or an
fsspec URL of an allowed protocol (`s3://...` with the optional `s3fs`, `memory://...`).

What the import does, a chunk of CHUNK_ROWS rows at a time:
1. reads the rows from the job's byte offset (the manifest is streamed, never held whole);
2. hashes each file (SHA-256) in a bounded thread pool. A local file is referenced in place:
   the clip's path is its absolute path and nothing is copied. A remote one is fetched once
   into the content store (`DATA/audio/ab/<sha>.<ext>`, like uploads), since the server
   serves and analyses audio from files it can open;
3. drops duplicates (the same content already in the project or earlier in the manifest, or
   the same uri twice), checks labels, and reads each new file's header (soundfile: format,
   length, a truncated data chunk) in the pool;
4. writes the chunk's rejections to the report (`row,uri,reason`, fsynced) and then, in one
   short write transaction, the chunk's clips (executemany), the project's counts and the job's
   progress: offset, rows, counts and the report's length. A restart truncates the report to
   that length and reads on from the offset, so nothing is imported or reported twice.

One process runs a job at a time (`lease_until`, taken with a conditional UPDATE and renewed
with each chunk; it expires when that process dies). The server runs queued jobs in a thread
(`ImportRunner`); `listenloop import` runs one in the foreground.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import soundfile as sf
from sqlalchemy import insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from listenloop.audio.io import AUDIO_EXTENSIONS
from listenloop.engine import projects as ops
from listenloop.engine.errors import InvalidError, NotFoundError, TooLargeError
from listenloop.engine.labels import normalize_label
from listenloop.engine.storage import TMP_DIR
from listenloop.engine.uploads import MIN_DURATION, audio_path, truncation
from listenloop.store.database import Database
from listenloop.store.models import Clip, Event, ImportJob, Project, utcnow

FORMATS = ("csv", "jsonl")
URI_COLUMNS = ("uri", "file", "path")  # the first one a CSV header has names the audio
CHUNK_ROWS = 1000
HASH_WORKERS = 4
HASH_CACHE = 200_000  # (path, size, mtime) -> sha256 remembered per job: a file listed again is not re-read
LEASE = timedelta(seconds=60)
POLL_SECONDS = 2.0
MAX_URI = 512  # clips.file_name and clips.path
READ_CHUNK = 1 << 20
IMPORTS_DIR = "imports"  # DATA/imports/<job>/: an uploaded manifest and the rejection report
REPORT_NAME = "rejected.csv"


class LeaseLostError(RuntimeError):
    """Another process took the job (this one's lease expired)."""


@dataclass(frozen=True)
class Sources:
    """Where a manifest's uris may point: local paths under `root` (None: anywhere, for the
    command line run by whoever runs the server), relative paths against `base`, and the fsspec
    protocols besides local files that may be fetched (`s3`, `memory`, ...)."""

    root: Path | None = None
    base: Path | None = None
    protocols: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root) if self.root else None,
            "base": str(self.base) if self.base else None,
            "protocols": sorted(self.protocols),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sources:
        return cls(
            root=Path(data["root"]) if data.get("root") else None,
            base=Path(data["base"]) if data.get("base") else None,
            protocols=frozenset(data.get("protocols") or ()),
        )


@dataclass
class Row:
    """One manifest row: its number (1 = the first data row), what it says, and a parse problem."""

    number: int
    uri: str
    label: str | None = None
    meta: dict[str, Any] | None = None
    problem: str | None = None


@dataclass
class Probe:
    """What the pool found out about one row's file."""

    row: Row
    local: str | None = None  # the file to read (the referenced file, or a fetched copy)
    remote: bool = False
    ext: str = ""
    size: int = 0
    sha256: str | None = None
    duration: float = 0.0
    sample_rate: int = 0
    label: str | None = None
    problem: str | None = None


@dataclass
class ChunkResult:
    """Counts of one chunk, as they are added to the job."""

    rows: int = 0
    added: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str, str]] = field(default_factory=list)
    seeds: int = 0
    copied_bytes: int = 0


# -- reading the manifest ----------------------------------------------------------------------


class _Lines:
    """A binary file's lines as text, with the byte offset after the last line handed out."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.pos = f.tell()

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.f.readline()
        if not line:
            raise StopIteration
        self.pos += len(line)
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError:
            return line.decode("utf-8", errors="replace")


def manifest_format(name: str, given: str | None = None) -> str:
    """`csv` or `jsonl`: as given, else from the file name (.jsonl/.ndjson: jsonl)."""
    if given:
        if given not in FORMATS:
            raise InvalidError(f"format must be one of {', '.join(FORMATS)}, not {given!r}")
        return given
    return "jsonl" if name.lower().endswith((".jsonl", ".ndjson", ".json")) else "csv"


def csv_header(path: Path) -> tuple[list[str], int]:
    """The CSV manifest's column names and the byte offset of its first data row; InvalidError
    when it has no uri column."""
    with open(path, "rb") as f:
        lines = _Lines(f)
        try:
            header = next(csv.reader(lines))
        except StopIteration:
            raise InvalidError("the manifest is empty (expected a header with a uri column)") from None
        except csv.Error as exc:
            raise InvalidError(f"the manifest's header is not CSV ({exc})") from None
    names = [h.strip().lstrip("\ufeff") for h in header]
    if not any(c in names for c in URI_COLUMNS):
        raise InvalidError(
            f"the manifest's header has no uri column (expected one of {', '.join(URI_COLUMNS)}; "
            f"got {', '.join(names) or 'nothing'})"
        )
    if len(set(names)) != len(names):
        raise InvalidError("the manifest's header names a column twice")
    return names, lines.pos


def read_rows(path: Path, fmt: str, offset: int, first_row: int) -> Iterator[tuple[Row, int]]:
    """The manifest's rows from byte `offset` (0: the start), numbered from `first_row`, each with
    the byte offset after it. Streams the file: one row in memory at a time."""
    header: list[str] = []
    if fmt == "csv":
        header, start = csv_header(path)
        offset = max(offset, start)
        uri_col = next(c for c in URI_COLUMNS if c in header)
    number = first_row
    with open(path, "rb") as f:
        f.seek(offset)
        lines = _Lines(f)
        if fmt == "csv":
            reader = csv.reader(lines)
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield Row(number, "", problem=f"not CSV ({exc})"), lines.pos
                    number += 1
                    continue
                if not cells or all(not c.strip() for c in cells):
                    continue  # blank lines are not rows
                yield _csv_row(number, header, uri_col, cells), lines.pos
                number += 1
        else:
            for line in lines:
                if not line.strip():
                    continue
                yield _json_row(number, line), lines.pos
                number += 1


def _split(number: int, values: dict[str, Any], uri_col: str) -> Row:
    """A row from its named values: uri, label, and the rest (group included) as metadata."""
    uri = values.pop(uri_col, None)  # a `file` or `path` column beside `uri` stays metadata
    label = values.pop("label", None)
    if label is not None and not isinstance(label, str | int | float | list):
        return Row(number, str(uri or ""), problem="bad label: not text, a number or a list of tags")
    if isinstance(label, str) and not label.strip():
        label = None
    meta = {k: v for k, v in values.items() if v not in (None, "")}
    if not isinstance(uri, str) or not uri.strip():
        return Row(number, "" if uri is None else str(uri), problem="no uri")
    return Row(number, uri.strip(), label=label, meta=meta or None)  # type: ignore[arg-type]


def _csv_row(number: int, header: list[str], uri_col: str, cells: list[str]) -> Row:
    values: dict[str, Any] = dict(zip(header, cells, strict=False))
    if len(cells) > len(header):
        return Row(number, str(values.get(uri_col, "")), problem="more cells than columns")
    return _split(number, values, uri_col)


def _json_row(number: int, line: str) -> Row:
    try:
        values = json.loads(line)
    except ValueError as exc:
        return Row(number, "", problem=f"not JSON ({exc.args[0] if exc.args else exc})")
    if not isinstance(values, dict):
        return Row(number, "", problem="not a JSON object")
    uri_col = next((c for c in URI_COLUMNS if c in values), "uri")
    return _split(number, values, uri_col)


# -- locating and probing one file --------------------------------------------------------------


def locate(uri: str, sources: Sources) -> tuple[str, bool]:
    """(the local path or fsspec URL to read, whether it is remote); ValueError with the reason
    when the uri may not be read."""
    if len(uri) > MAX_URI:
        raise ValueError(f"uri longer than {MAX_URI} characters")
    if any(ord(ch) < 32 for ch in uri):
        raise ValueError("uri has control characters")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower() if "://" in uri else ""
    if scheme and scheme != "file":
        if scheme not in sources.protocols and "*" not in sources.protocols:
            allowed = ", ".join(sorted(sources.protocols)) or "none"
            raise ValueError(f"protocol {scheme!r} is not allowed here (allowed: local paths; {allowed})")
        return uri, True
    raw = unquote(parts.path) if scheme == "file" else uri
    path = Path(raw)
    if not path.is_absolute():
        if sources.base is None:
            raise ValueError("relative path, and the manifest has no base folder")
        path = sources.base / path
    real = Path(os.path.realpath(path))
    if sources.root is not None and not real.is_relative_to(sources.root):
        raise ValueError("outside the import root")
    if len(str(real)) > MAX_URI:
        raise ValueError(f"path longer than {MAX_URI} characters")
    return str(real), False


class HashCache:
    """SHA-256 of files by (path, size, mtime), the newest HASH_CACHE of them (thread-safe)."""

    def __init__(self, size: int = HASH_CACHE) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, int, int], str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int, int]) -> str | None:
        with self._lock:
            sha = self._items.get(key)
            if sha is not None:
                self._items.move_to_end(key)
            return sha

    def put(self, key: tuple[str, int, int], sha: str) -> None:
        with self._lock:
            self._items[key] = sha
            if len(self._items) > self.size:
                self._items.popitem(last=False)


def _hash_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, dest: Path) -> tuple[int, str]:
    """Copy an fsspec URL to `dest`, hashing it: (bytes, sha256)."""
    import fsspec

    digest = hashlib.sha256()
    size = 0
    with fsspec.open(url, "rb") as src, open(dest, "wb") as out:
        while chunk := src.read(READ_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _probe_file(probe: Probe, sources: Sources, cache: HashCache, tmp: Path, max_bytes: int) -> Probe:
    """Where the row's file is, its size and hash (fetched first when remote), or the problem."""
    row = probe.row
    try:
        target, remote = locate(row.uri, sources)
    except ValueError as exc:
        probe.problem = str(exc)
        return probe
    probe.remote = remote
    probe.ext = PurePosixPath(urlsplit(target).path if remote else target).suffix.lower()
    if probe.ext not in AUDIO_EXTENSIONS:
        probe.problem = f"not an audio file name ({probe.ext or 'no extension'})"
        return probe
    try:
        if remote:
            dest = tmp / f"{row.number}{probe.ext}"
            probe.size, probe.sha256 = _fetch(target, dest)
            probe.local = str(dest)
        else:
            st = os.stat(target)
            if not os.path.isfile(target):
                probe.problem = "not a file"
                return probe
            probe.size, probe.local = st.st_size, target
            key = (target, st.st_size, st.st_mtime_ns)
            probe.sha256 = cache.get(key)
            if probe.sha256 is None and st.st_size:
                probe.sha256 = _hash_file(target)
                cache.put(key, probe.sha256)
    except FileNotFoundError:
        probe.problem = "missing file"
    except (OSError, ValueError) as exc:  # fsspec raises its own errors for missing remote keys
        probe.problem = f"unreadable ({getattr(exc, 'strerror', None) or exc})"
    else:
        if probe.size == 0:
            probe.problem = "empty file"
        elif probe.size > max_bytes:
            probe.problem = f"{probe.size} bytes (limit {max_bytes})"
    return probe


def _probe_audio(probe: Probe) -> Probe:
    """Read the file's header: format, length and sample rate; a truncated data chunk is a problem."""
    assert probe.local is not None
    try:
        info = sf.info(probe.local)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
        probe.problem = f"unreadable audio ({exc})"
        return probe
    if not info.frames or not info.samplerate:
        probe.problem = "unreadable audio (no samples)"
        return probe
    probe.duration, probe.sample_rate = info.frames / info.samplerate, int(info.samplerate)
    if probe.duration < MIN_DURATION:
        probe.problem = f"too short to annotate ({probe.duration * 1000:.0f} ms)"
    else:
        probe.problem = truncation(Path(probe.local))
    return probe


# -- the job ---------------------------------------------------------------------------------------


def job_dir(data_dir: Path, job_id: int) -> Path:
    """DATA/imports/<job>: an uploaded manifest and the job's rejection report."""
    return data_dir / IMPORTS_DIR / str(job_id)


def create_job(
    session: Session,
    project: Project,
    manifest: Path,
    *,
    source: str,
    fmt: str,
    sources: Sources,
    user_id: int | None,
) -> ImportJob:
    """A queued import of the manifest at `manifest` (checked: readable, and a CSV's header names
    a uri column) into `project`."""
    if project.task_type == "events":
        raise InvalidError("events projects cut recordings into segments on upload: upload them as a zip")
    try:
        size = manifest.stat().st_size
    except OSError as exc:
        raise InvalidError(f"manifest {source}: {exc.strerror or exc}") from None
    if fmt == "csv":
        csv_header(manifest)
    now = utcnow()
    job = ImportJob(
        project_id=project.id,
        user_id=user_id,
        source=source[:512],
        manifest=str(manifest),
        format=fmt,
        sources=sources.to_json(),
        status="queued",
        size_bytes=size,
        offset=0,
        rows=0,
        added=0,
        duplicates=0,
        rejected=0,
        report_bytes=0,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    return job


def job_view(job: ImportJob) -> dict[str, Any]:
    """A job's progress as the API and the command line show it."""
    done = job.status == "done"
    progress = min(1.0, job.offset / job.size_bytes) if job.size_bytes else 0.0
    return {
        "id": job.id,
        "project_id": job.project_id,
        "source": job.source,
        "format": job.format,
        "status": job.status,
        "rows": job.rows,
        "added": job.added,
        "duplicates": job.duplicates,
        "rejected": job.rejected,
        "bytes_read": job.offset,
        "size_bytes": job.size_bytes,
        "progress": 1.0 if done else round(progress, 4),
        "error": job.error,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "updated_at": job.updated_at.isoformat() if job.updated_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def load_job(session: Session, project_id: int, job_id: int) -> ImportJob:
    """The job `job_id` of the project; NotFoundError otherwise."""
    job = session.get(ImportJob, job_id)
    if job is None or job.project_id != project_id:
        raise NotFoundError(f"import {job_id} does not exist in project {project_id}")
    return job


def take_job(db: Database, job_id: int, lease: timedelta = LEASE) -> datetime | None:
    """Hold the job (queued, or running with an expired lease): the lease's end, or None."""
    now = utcnow()
    until = now + lease
    with db.write() as session:
        taken = session.execute(
            update(ImportJob)
            .where(
                ImportJob.id == job_id,
                ImportJob.status.in_(("queued", "running")),
                (ImportJob.lease_until.is_(None)) | (ImportJob.lease_until < now),
            )
            .values(status="running", lease_until=until, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return until if taken.rowcount == 1 else None


def release_job(db: Database, job_id: int, token: datetime) -> None:
    """Give the job's lease back (it stays running: whoever takes it next continues)."""
    with db.write() as session:
        session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id, ImportJob.lease_until == token)
            .values(lease_until=None)
            .execution_options(synchronize_session=False)
        )


def due_jobs(db: Database) -> list[int]:
    """Jobs waiting for a runner: queued, or running with no live lease (their process died)."""
    now = utcnow()
    with db.read() as session:
        return list(
            session.scalars(
                select(ImportJob.id)
                .where(
                    ImportJob.status.in_(("queued", "running")),
                    (ImportJob.lease_until.is_(None)) | (ImportJob.lease_until < now),
                )
                .order_by(ImportJob.id)
            )
        )


@dataclass
class _JobState:
    id: int
    project_id: int
    manifest: Path
    fmt: str
    sources: Sources
    offset: int
    rows: int
    report_bytes: int
    quota: int | None


class ImportRun:
    """Runs one held job to its end (or until `stop` is set): chunk after chunk."""

    def __init__(
        self,
        db: Database,
        data_dir: Path,
        job_id: int,
        token: datetime,
        *,
        quota: int | None = None,
        max_bytes: int = 1 << 30,
        workers: int = HASH_WORKERS,
        chunk_rows: int = CHUNK_ROWS,
        stop: threading.Event | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.db, self.data_dir, self.token = db, Path(data_dir), token
        self.max_bytes, self.workers, self.chunk_rows = max_bytes, workers, chunk_rows
        self.stop = stop or threading.Event()
        self.progress = progress
        self.rng = rng or random.Random()
        self.cache = HashCache()
        with db.read() as session:
            job = session.get(ImportJob, job_id)
            if job is None:
                raise NotFoundError(f"import {job_id} does not exist")
            self.state = _JobState(
                job.id,
                job.project_id,
                Path(job.manifest),
                job.format,
                Sources.from_json(job.sources),
                job.offset,
                job.rows,
                job.report_bytes,
                quota,
            )
        self.folder = job_dir(self.data_dir, job_id)
        self.tmp = self.data_dir / TMP_DIR / f"import-{job_id}"

    def run(self) -> str:
        """Import the rest of the manifest: the job's status when it stops (done, failed, running
        when stopped midway)."""
        state = self.state
        self.folder.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        report = self.folder / REPORT_NAME
        try:
            with open(report, "a+b") as out, ThreadPoolExecutor(self.workers) as pool:
                out.truncate(state.report_bytes)  # rows a crash reported but did not commit
                out.seek(state.report_bytes)
                if state.report_bytes == 0:
                    out.write(b"row,uri,reason\n")
                    out.flush()
                rows = read_rows(state.manifest, state.fmt, state.offset, state.rows + 1)
                while not self.stop.is_set():
                    chunk: list[Row] = []
                    end = state.offset
                    for row, pos in rows:
                        chunk.append(row)
                        end = pos
                        if len(chunk) >= self.chunk_rows:
                            break
                    if not chunk:
                        self._finish("done")
                        return "done"
                    result = self._chunk(pool, chunk)
                    self._commit(out, result, end)
            return "running"
        except (LeaseLostError, OperationalError):  # another process has it, or the database is busy
            return "running"
        except (InvalidError, TooLargeError) as exc:
            self._finish("failed", str(exc))
            return "failed"
        except OSError as exc:
            self._finish("failed", f"manifest {state.manifest}: {exc.strerror or exc}")
            return "failed"
        except Exception as exc:
            self._finish("failed", f"{type(exc).__name__}: {exc}")
            return "failed"
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _chunk(self, pool: ThreadPoolExecutor, chunk: list[Row]) -> tuple[ChunkResult, list[dict[str, Any]]]:
        """Probe, dedupe and check one chunk: its counts and the clip rows to insert."""
        state = self.state
        result = ChunkResult(rows=len(chunk))
        with self.db.read() as session:
            project = ops.load_project(session, state.project_id)
            mode = project.mode
            # the same uri as a clip of the project: a duplicate, without reading the file again
            known_names = _existing(
                session, Clip.file_name, state.project_id, {r.uri for r in chunk if r.problem is None}
            )
        firsts: dict[str, Probe] = {}  # uri -> its first row in this chunk
        later: list[tuple[Probe, Probe]] = []  # (a repeated row, the first row of its uri)
        probes: list[Probe] = []
        todo: list[Probe] = []
        for row in chunk:
            probe = Probe(row, problem=row.problem)
            probes.append(probe)
            if probe.problem is None and row.label is not None:
                try:
                    probe.label = normalize_label(project, row.label)
                except InvalidError as exc:
                    probe.problem = f"bad label ({exc})"
            if probe.problem is not None:
                continue
            if row.uri in known_names:
                probe.problem = "duplicate: a clip with this uri is already in the project"
            elif row.uri in firsts:
                later.append((probe, firsts[row.uri]))
            else:
                firsts[row.uri] = probe
                todo.append(probe)
        sources, cache, tmp, most = state.sources, self.cache, self.tmp, self.max_bytes
        _batched(pool, self.workers, lambda p: _probe_file(p, sources, cache, tmp, most), todo)
        live = [p for p in todo if p.problem is None]
        with self.db.read() as session:
            known_shas = _existing(session, Clip.sha256, state.project_id, {p.sha256 for p in live})
        for p in live:
            if p.sha256 in known_shas:
                p.problem = "duplicate: the same audio is already in the project"
            if p.problem is None:
                known_shas.add(p.sha256)
        _batched(pool, self.workers, _probe_audio, [p for p in live if p.problem is None])
        for p, first in later:
            p.problem = (
                f"duplicate: the same uri as row {first.row.number}"
                if first.problem is None
                else first.problem
            )
        result.duplicates = sum(1 for p in probes if p.problem and p.problem.startswith("duplicate"))
        now = utcnow()
        clips: list[dict[str, Any]] = []
        for p in probes:
            if p.problem is not None:
                result.rejected.append((p.row.number, p.row.uri, p.problem))
                if p.remote and p.local:
                    Path(p.local).unlink(missing_ok=True)
                continue
            assert p.sha256 is not None and p.local is not None
            path = p.local
            if p.remote:  # fetched: into the content store, like an upload
                path = audio_path(p.sha256, p.ext)
                dest = self.data_dir / path
                dest.parent.mkdir(parents=True, exist_ok=True)
                if dest.exists():
                    Path(p.local).unlink(missing_ok=True)
                else:
                    os.replace(p.local, dest)
                result.copied_bytes += p.size
            seeded = p.label is not None
            result.seeds += seeded
            clips.append(
                {
                    "project_id": state.project_id,
                    "file_name": p.row.uri,
                    "sha256": p.sha256,
                    "path": path,
                    "size_bytes": p.size,
                    "duration": p.duration,
                    "sample_rate": p.sample_rate,
                    "status": "done" if seeded else ("pool" if mode == "stream" else "queued"),
                    "rank": self.rng.random(),
                    "seed_label": p.label,
                    "label": p.label,
                    "confidence": 1.0 if seeded else None,
                    "meta": p.row.meta,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        result.added = len(clips)
        return result, clips

    def _commit(self, out: IO[bytes], chunk: tuple[ChunkResult, list[dict[str, Any]]], end: int) -> None:
        """The chunk's rejections to the report (on disk first), then its clips and the job's
        progress in one transaction."""
        result, clips = chunk
        state = self.state
        if result.rejected:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(result.rejected)
            out.write(buf.getvalue().encode("utf-8"))
        out.flush()
        os.fsync(out.fileno())
        report_bytes = out.tell()
        now = utcnow()
        new_token = now + LEASE
        with self.db.write() as session:
            held = session.execute(
                update(ImportJob)
                .where(ImportJob.id == state.id, ImportJob.lease_until == self.token)
                .values(
                    offset=end,
                    rows=ImportJob.rows + result.rows,
                    added=ImportJob.added + result.added,
                    duplicates=ImportJob.duplicates + result.duplicates,
                    rejected=ImportJob.rejected + len(result.rejected),
                    report_bytes=report_bytes,
                    lease_until=new_token,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if held.rowcount != 1:
                raise LeaseLostError(f"import {state.id}: another process holds it now")
            if clips:
                session.execute(insert(Clip), clips)
                stmt = update(Project).where(Project.id == state.project_id)
                if result.copied_bytes and state.quota is not None:
                    stmt = stmt.where(Project.stored_bytes + result.copied_bytes <= state.quota)
                taken = session.execute(
                    stmt.values(
                        clips_count=Project.clips_count + len(clips),
                        labels_count=Project.labels_count + result.seeds,
                        stored_bytes=Project.stored_bytes + result.copied_bytes,
                    ).execution_options(synchronize_session=False)
                )
                if taken.rowcount != 1:  # the transaction rolls back: nothing of this chunk is stored
                    raise TooLargeError(
                        f"the project's storage quota is full: {result.copied_bytes} bytes of fetched audio "
                        "do not fit (audio referenced in place takes none)"
                    )
        self.token = new_token
        state.offset, state.rows, state.report_bytes = end, state.rows + result.rows, report_bytes
        if self.progress is not None:
            self.progress({"rows": state.rows, "bytes_read": end})

    def _finish(self, status: str, error: str | None = None) -> None:
        """Mark the job done or failed, release it and log an event."""
        state = self.state
        now = utcnow()
        with self.db.write() as session:
            done = session.execute(
                update(ImportJob)
                .where(ImportJob.id == state.id, ImportJob.lease_until == self.token)
                .values(status=status, error=error, lease_until=None, updated_at=now, finished_at=now)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount != 1:
                return
            job = session.get(ImportJob, state.id)
            assert job is not None
            session.add(
                Event(
                    project_id=state.project_id,
                    user_id=job.user_id,
                    kind="clips_imported",
                    data={
                        "job": state.id,
                        "status": status,
                        "rows": job.rows,
                        "added": job.added,
                        "rejected": job.rejected,
                        "duplicates": job.duplicates,
                    },
                )
            )


def _batched(
    pool: ThreadPoolExecutor, workers: int, fn: Callable[[Probe], Probe], probes: list[Probe]
) -> None:
    """`fn` on every probe in the pool, a slice per task (a future per file costs as much as a
    cached file's probe)."""
    if not probes:
        return
    step = max(1, -(-len(probes) // (4 * max(1, workers))))
    slices = [probes[i : i + step] for i in range(0, len(probes), step)]
    for _ in pool.map(lambda part: [fn(p) for p in part], slices):
        pass


def _existing(session: Session, column: Any, project_id: int, values: set[Any]) -> set[Any]:
    """Which of `values` the project's clips already have in `column` (sha256 or file_name)."""
    found: set[Any] = set()
    items = sorted(v for v in values if v is not None)
    for start in range(0, len(items), 500):
        part = items[start : start + 500]
        found.update(session.scalars(select(column).where(Clip.project_id == project_id, column.in_(part))))
    return found


def run_job(db: Database, data_dir: Path, job_id: int, **kwargs: Any) -> str:
    """Take the job and run it to its end here: its status ("busy" when another process holds it)."""
    token = take_job(db, job_id)
    if token is None:
        return "busy"
    runner = ImportRun(db, data_dir, job_id, token, **kwargs)
    try:
        return runner.run()
    finally:
        release_job(db, job_id, runner.token)


class ImportRunner:
    """The server's background thread: runs due import jobs one at a time, resuming those a
    stopped process left running."""

    def __init__(
        self,
        db: Database,
        data_dir: Path,
        *,
        quota: int | None = None,
        max_bytes: int = 1 << 30,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.db, self.data_dir = db, Path(data_dir)
        self.quota, self.max_bytes, self.poll_seconds = quota, max_bytes, poll_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="listenloop-imports", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for job_id in due_jobs(self.db):
                    if self._stop.is_set():
                        break
                    run_job(
                        self.db,
                        self.data_dir,
                        job_id,
                        quota=self.quota,
                        max_bytes=self.max_bytes,
                        stop=self._stop,
                    )
            except Exception:  # the database went away for a moment: try again at the next poll
                time.sleep(self.poll_seconds)
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
