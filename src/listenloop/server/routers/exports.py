"""Exports for owners: labels per clip and trust per annotator, and every stored answer."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from listenloop.engine import projects as ops
from listenloop.engine.exports import export_answers, export_project
from listenloop.server.deps import DB, ProjectId, User
from listenloop.server.json_body import StrictJSONRoute

router = APIRouter(tags=["exports"], route_class=StrictJSONRoute)
MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


@router.get("/projects/{project_id}/export", response_class=PlainTextResponse)
async def export(
    project_id: ProjectId,
    who: User,
    db: DB,
    format: Literal["csv", "jsonl"] = Query("csv", description="csv or jsonl"),
    table: Literal["clips", "annotators"] = Query("clips", description="Which table a CSV holds."),
) -> PlainTextResponse:
    """Per clip: file, hard label, confidence, soft distribution, answers; per annotator: trust, answers.

    CSV holds one table (`table=clips|annotators`); JSONL holds both, `record` saying which.
    """
    with db.read() as session:
        project = ops.load_project(session, project_id)
        ops.require_owner(project, who)
        text = export_project(session, project, format, table)
    name = f"project-{project_id}-{table if format == 'csv' else 'labels'}.{format}"
    return PlainTextResponse(
        text, media_type=MEDIA[format], headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get("/projects/{project_id}/answers", response_class=PlainTextResponse)
async def answers(
    project_id: ProjectId,
    who: User,
    db: DB,
    format: Literal["csv", "jsonl"] = Query("csv", description="csv or jsonl"),
) -> PlainTextResponse:
    """Every stored answer: `task_id,clip_id,annotator,answer,kind,answered_at` (owner)."""
    with db.read() as session:
        project = ops.load_project(session, project_id)
        ops.require_owner(project, who)
        text = export_answers(session, project, format)
    name = f"project-{project_id}-answers.{format}"
    return PlainTextResponse(
        text, media_type=MEDIA[format], headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
