"""A project's dry run: `listenloop simulate` on the owner's labelled clips, before answers are paid.

`POST /projects/{id}/dry-run` queues one (202 with its id; 422 when the labels are too few to
simulate, 409 while one is queued or running); `GET /projects/{id}/dry-run` shows the newest:
queued, running (with progress), done (per-strategy figures and the verdict) or failed. Owner
only (annotators get 403). The learning service's process runs it (`engine/dry_run.py`); these
routes only translate HTTP into those calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from listenloop.engine import dry_run as dry
from listenloop.engine import projects as ops
from listenloop.server.deps import DB, Actor, ProjectId, User
from listenloop.server.json_body import StrictJSONRoute

router = APIRouter(tags=["dry run"], route_class=StrictJSONRoute)


class Progress(BaseModel):
    """Simulated (fold, run) pairs so far, of `total` (None until the run has planned them)."""

    done: int
    total: int | None
    share: float


class DryRunOut(BaseModel):
    """A dry run: its state and, once done, `result` (`plan`, `command`: the equivalent
    `listenloop simulate` line, `curves` per strategy, `verdict`: per strategy the labels to reach
    the target score with an 80 % interval, the recommended strategy and the verdict in words)."""

    id: int
    status: str = Field(description="queued, running, done or failed")
    labels: int = Field(description="Labelled clips the dry run simulates on.")
    progress: Progress
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None
    result: dict[str, Any] | None
    error: str | None


@router.post("/projects/{project_id}/dry-run", status_code=status.HTTP_202_ACCEPTED, response_model=DryRunOut)
def start_dry_run(project_id: ProjectId, who: Actor, db: DB) -> dict[str, Any]:
    """Queue a dry run on the project's labelled clips (owner); the learning service runs it."""
    with db.write() as session:
        project = ops.load_project(session, project_id)
        ops.require_owner(project, who)
        return dry.request_dry_run(session, project, who.id)


@router.get("/projects/{project_id}/dry-run", response_model=DryRunOut)
def dry_run(project_id: ProjectId, who: User, db: DB) -> dict[str, Any]:
    """The project's newest dry run (owner): its status and progress, then its figures and verdict."""
    with db.read_only() as session:
        project = ops.load_project(session, project_id)
        ops.require_owner(project, who)
        return dry.dry_run_status(session, project)
