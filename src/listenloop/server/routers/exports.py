"""Exports for owners: labels per clip and trust per annotator, and every stored answer.

The routes are plain functions (FastAPI runs them in its thread pool) and the files stream:
the owner's check runs first, then the text is read in pieces from a read-only session
(`Database.read_only`: one snapshot) by a child process at a lower CPU priority
(`engine/export_process.py`) and relayed as it comes, so that neither the event loop (the
annotators' `next` and `answer`, which would wait for the GIL) nor the memory waits on the
whole file.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

from listenloop.engine import projects as ops
from listenloop.engine.accounts import Principal
from listenloop.engine.errors import InvalidError, NotFoundError
from listenloop.engine.export_process import ExportOrder, export_bytes
from listenloop.engine.labelstudio import labelling_config, require_choices
from listenloop.engine.live.aggregate import strong_soft_labels
from listenloop.sed import maestro
from listenloop.server.deps import DB, ProjectId, User
from listenloop.server.json_body import StrictJSONRoute
from listenloop.store.database import Database
from listenloop.store.models import Project

router = APIRouter(tags=["exports"], route_class=StrictJSONRoute)
MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson", "json": "application/json"}
TEXT = {"content": {"text/csv": {}, "application/x-ndjson": {}, "application/json": {}}}


def _owned(
    db: Database, project_id: int, who: Principal, check: Callable[[Project], None] | None = None
) -> None:
    """404 for an unknown project, 403 unless the caller owns it, and `check`'s refusal (before
    anything is sent)."""
    with db.read_only() as session:
        project = ops.load_project(session, project_id)
        ops.require_owner(project, who)
        if check is not None:
            check(project)


def _attachment(pieces: Iterator[bytes], fmt: str, name: str) -> StreamingResponse:
    return StreamingResponse(
        pieces, media_type=MEDIA[fmt], headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get("/projects/{project_id}/export", response_class=StreamingResponse, responses={200: TEXT})
def export(
    project_id: ProjectId,
    who: User,
    db: DB,
    request: Request,
    format: Literal["csv", "jsonl", "labelstudio", "crowdkit"] = Query(
        "csv", description="csv, jsonl, labelstudio or crowdkit"
    ),
    table: Literal["clips", "annotators"] = Query("clips", description="Which table a CSV holds."),
) -> StreamingResponse:
    """Per clip: file, hard label, confidence, soft distribution, answers; per annotator: trust, answers.

    CSV holds one table (`table=clips|annotators`); JSONL holds both, `record` saying which.
    `labelstudio`: a JSON list of Label Studio tasks (classification, binary and multi-label
    projects), one per clip: `data.audio` the clip's audio URL, one annotation per stored answer
    (`completed_by` the annotator's id; username, kind and listenloop ids in `meta`; "can't tell"
    as a skipped annotation, the owner's correction as `ground_truth`), and the clip's final
    label as its prediction (`score` its confidence, `model_version` its source).
    `crowdkit`: the crowd's regular answers as crowd-kit's `task,worker,label` CSV (task: the
    clip id; "can't tell" left out).
    """
    if format == "labelstudio":
        _owned(db, project_id, who, require_choices)
        url = str(request.base_url).rstrip("/") + "/api/v1/clips/{clip_id}/audio"
        pieces = export_bytes(db, ExportOrder(project_id, "labelstudio", "json", audio_url=url))
        return _attachment(pieces, "json", f"project-{project_id}-labelstudio.json")
    _owned(db, project_id, who)
    if format == "crowdkit":
        pieces = export_bytes(db, ExportOrder(project_id, "crowdkit"))
        return _attachment(pieces, "csv", f"project-{project_id}-crowdkit.csv")
    pieces = export_bytes(db, ExportOrder(project_id, "labels", format, table))
    name = f"project-{project_id}-{table if format == 'csv' else 'labels'}.{format}"
    return _attachment(pieces, format, name)


@router.get(
    "/projects/{project_id}/labelstudio-config",
    response_class=PlainTextResponse,
    responses={200: {"content": {"application/xml": {}}}},
)
def labelstudio_config(project_id: ProjectId, who: User, db: DB) -> Response:
    """The Label Studio labelling config (XML) that `export?format=labelstudio` fits (owner): an
    Audio tag and the project's classes as Choices (multiple for multi-label projects)."""
    with db.read_only() as session:
        project = ops.load_project(session, project_id)
        ops.require_owner(project, who)
        require_choices(project)
        return Response(labelling_config(project), media_type="application/xml")


@router.get("/projects/{project_id}/answers", response_class=StreamingResponse, responses={200: TEXT})
def answers(
    project_id: ProjectId,
    who: User,
    db: DB,
    format: Literal["csv", "jsonl"] = Query("csv", description="csv or jsonl"),
) -> StreamingResponse:
    """Every stored answer: `task_id,clip_id,annotator,answer,kind,answered_at` (owner)."""
    _owned(db, project_id, who)
    pieces = export_bytes(db, ExportOrder(project_id, "answers", format))
    return _attachment(pieces, format, f"project-{project_id}-answers.{format}")


@router.get("/projects/{project_id}/export/events", response_model=None)
def export_events(
    project_id: ProjectId,
    who: User,
    db: DB,
    recording: str | None = Query(None, max_length=512, description="One recording's file as text."),
    labels: Literal["soft", "hard"] = Query("soft", description="With `recording`: which file."),
) -> Response:
    """An events project's strong labels in the MAESTRO-Real style, one file per recording:
    soft (`onset offset label value` per hop and class, 004_ eq. 1 over the overlapping
    segments) and hard (`onset offset label` events, soft > 0.5 merged). A zip of
    `soft/NAME.txt` and `hard/NAME.txt`, or one file as text with `recording`."""
    with db.read_only() as session:
        project = ops.load_project(session, project_id)
        ops.require_owner(project, who)
        if project.task_type != "events":
            raise InvalidError(f"project {project_id} is a {project.task_type} project, not events")
        soft = strong_soft_labels(session, project)
    texts = maestro.files(soft)
    if recording is not None:
        text = texts.get(f"{labels}/{recording}.txt")
        if text is None:
            raise NotFoundError(f"no answered recording {recording!r} in project {project_id}")
        return PlainTextResponse(text)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for rel, text in texts.items():
            archive.writestr(rel, text)
    name = f"project-{project_id}-events.zip"
    return Response(
        buffer.getvalue(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
