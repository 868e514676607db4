"""Bulk imports: a manifest (CSV or JSONL) queued as a background job, its progress, and its
rejection report (`engine/bulk_import.py` does the work)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile, status
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from listenloop.engine import bulk_import as imports
from listenloop.engine import projects as ops
from listenloop.engine.errors import InvalidError, NotFoundError
from listenloop.engine.storage import TMP_DIR
from listenloop.server.deps import DB, MAX_ID, DataDir, ProjectId, User
from listenloop.server.json_body import StrictJSONRoute
from listenloop.server.limits import UploadRoute
from listenloop.store.database import Database
from listenloop.store.models import ImportJob

JobId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="An import's id.")]
router = APIRouter(tags=["imports"], route_class=StrictJSONRoute)
uploads = APIRouter(tags=["imports"], route_class=UploadRoute)


class ImportOut(BaseModel):
    """A manifest import and how far it got."""

    id: int
    project_id: int
    source: str = Field(description="The manifest's file name as sent.")
    format: str = Field(description="csv or jsonl.")
    status: str = Field(description="queued, running, done or failed.")
    rows: int = Field(description="Manifest rows processed so far.")
    added: int = Field(description="Clips added.")
    duplicates: int = Field(
        description="Rows rejected as duplicates (same content or uri); counted in `rejected`."
    )
    rejected: int = Field(description="Rows rejected (the report lists each with its reason).")
    bytes_read: int = Field(description="Bytes of the manifest processed: where a restart continues.")
    size_bytes: int
    progress: float = Field(description="bytes_read / size_bytes (1 when done).")
    error: str | None = Field(description="Why a failed job stopped.")
    created_at: str | None
    updated_at: str | None
    finished_at: str | None
    report_url: str = Field(description="The rejection report: CSV row,uri,reason.")


def _out(job: ImportJob) -> dict[str, Any]:
    view = imports.job_view(job)
    view["report_url"] = f"/api/v1/projects/{job.project_id}/imports/{job.id}/rejected"
    return view


def _sources(request: Request) -> imports.Sources:
    """What this server lets a manifest point at: files under --import-root, and the protocols
    of LISTENLOOP_IMPORT_PROTOCOLS."""
    root: Path | None = request.app.state.import_root
    raw = request.app.state.settings.import_protocols or ""
    protocols = frozenset(p.strip().lower() for p in raw.split(",") if p.strip() and p.strip() != "*")
    if root is None and not protocols:
        raise InvalidError(
            "bulk imports are off on this server: start it with --import-root DIR (local paths are read "
            "there, relative ones against it) or LISTENLOOP_IMPORT_PROTOCOLS (e.g. s3)"
        )
    return imports.Sources(root=root, base=root, protocols=protocols)


def _queue(
    db: Database,
    data_dir: Path,
    project_id: int,
    who: Any,
    spooled: Path,
    source: str,
    fmt: str,
    sources: Any,
) -> dict[str, Any]:
    """Create the job and move its manifest under DATA/imports/<job> (in the thread pool)."""
    with db.write() as session:
        project = ops.load_project(session, project_id)
        ops.require_owner(project, who)
        job = imports.create_job(
            session, project, spooled, source=source, fmt=fmt, sources=sources, user_id=who.id
        )
        folder = imports.job_dir(data_dir, job.id)
        folder.mkdir(parents=True, exist_ok=True)
        kept = folder / f"manifest.{fmt}"
        shutil.move(spooled, kept)
        job.manifest = str(kept)
        session.flush()
        return _out(job)


@uploads.post(
    "/projects/{project_id}/imports", status_code=status.HTTP_202_ACCEPTED, response_model=ImportOut
)
async def start_import(
    project_id: ProjectId,
    who: User,
    db: DB,
    data_dir: DataDir,
    request: Request,
    manifest: Annotated[
        UploadFile,
        File(
            description="CSV (header with `uri`, optional `label`, `group` and other columns) or JSONL "
            "(one object per line with the same keys) of the audio to import."
        ),
    ],
    format: Annotated[str | None, Form(description="csv or jsonl (default: from the file name).")] = None,
) -> Any:
    """Queue a bulk import of the audio a manifest lists (owner): 202 with the job to poll. Local
    files are referenced in place (not copied); duplicates by content hash are rejected."""
    sources = _sources(request)
    name = manifest.filename or "manifest"
    fmt = imports.manifest_format(name, format)
    spool = data_dir / TMP_DIR
    spool.mkdir(parents=True, exist_ok=True)

    def spool_to_disk() -> Path:
        fd, tmp = tempfile.mkstemp(prefix="manifest-", dir=spool)
        with open(fd, "wb") as out:
            manifest.file.seek(0)
            shutil.copyfileobj(manifest.file, out, 1 << 20)
        return Path(tmp)

    spooled = await run_in_threadpool(spool_to_disk)
    try:
        job = await run_in_threadpool(_queue, db, data_dir, project_id, who, spooled, name, fmt, sources)
    finally:
        spooled.unlink(missing_ok=True)
    runner = getattr(request.app.state, "imports", None)
    if runner is not None:
        runner.wake()
    return job


def _job(db: Database, project_id: int, job_id: int, who: Any) -> ImportJob:
    with db.read() as session:
        project = ops.load_project(session, project_id)
        ops.require_owner(project, who)
        return imports.load_job(session, project_id, job_id)


@router.get("/projects/{project_id}/imports", response_model=list[ImportOut])
def list_imports(project_id: ProjectId, who: User, db: DB) -> list[dict[str, Any]]:
    """The project's imports, newest first (owner)."""
    with db.read() as session:
        project = ops.load_project(session, project_id)
        ops.require_owner(project, who)
        jobs = session.scalars(
            select(ImportJob)
            .where(ImportJob.project_id == project_id)
            .order_by(ImportJob.id.desc())
            .limit(100)
        )
        return [_out(job) for job in jobs]


@router.get("/projects/{project_id}/imports/{job_id}", response_model=ImportOut)
def import_status(project_id: ProjectId, job_id: JobId, who: User, db: DB) -> dict[str, Any]:
    """One import's progress (owner)."""
    return _out(_job(db, project_id, job_id, who))


@router.get(
    "/projects/{project_id}/imports/{job_id}/rejected",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def import_report(
    project_id: ProjectId, job_id: JobId, who: User, db: DB, data_dir: DataDir
) -> StreamingResponse:
    """The rejection report so far (owner): CSV `row,uri,reason`, one line per rejected row (the
    rows of committed chunks only: a chunk being written is not counted yet)."""
    job = _job(db, project_id, job_id, who)
    path = imports.job_dir(data_dir, job.id) / imports.REPORT_NAME
    length = job.report_bytes
    if length and not path.is_file():
        raise NotFoundError(f"the report of import {job_id} is missing from the data folder")
    body = _read_upto(path, length) if length else iter([b"row,uri,reason\n"])
    return StreamingResponse(
        body,
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="import-{job.id}-rejected.csv"',
            "Cache-Control": "no-store",
        },
    )


def _read_upto(path: Path, length: int) -> Iterator[bytes]:
    """The first `length` bytes of `path`, a MiB at a time."""
    with open(path, "rb") as f:
        while length > 0:
            chunk = f.read(min(length, 1 << 20))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk
