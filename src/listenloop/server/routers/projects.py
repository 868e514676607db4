"""Projects: create, list, show, change settings (and open a draft), progress, members."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from fastapi import APIRouter, Query, status
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from listenloop.engine import project_settings as settings
from listenloop.engine import projects as ops
from listenloop.engine.accounts import Principal
from listenloop.engine.config import ProjectConfig, ProjectPatch, check_learning_setup, problems_of
from listenloop.engine.errors import InvalidError, ProblemsError
from listenloop.engine.storage import storage_use
from listenloop.engine.uploads import UploadLimits
from listenloop.server.config_body import ConfigBodyRoute, PatchBodyRoute
from listenloop.server.deps import DB, Limits, Owner, ProjectId, User
from listenloop.server.json_body import StrictJSONRoute
from listenloop.server.schemas import MemberIn, MemberOut, StatusOut

router = APIRouter(tags=["projects"], route_class=StrictJSONRoute)
# The routes whose body is a project config: a 422 lists every problem with a plain sentence.
config_router = APIRouter(tags=["projects"], route_class=ConfigBodyRoute)
patch_router = APIRouter(tags=["projects"], route_class=PatchBodyRoute)


@router.get("/projects")
async def list_projects(who: User, db: DB) -> list[dict[str, Any]]:
    """The projects the caller may see: `[{id, name, task_type, ..., reviewer}]` (`reviewer`: the
    caller may use the project's review queue, as its owner or a member with that role)."""
    with db.read() as session:
        reviews = ops.reviewed_projects(session, who)
        return [
            {**ops.describe_project(p, who), "reviewer": ops.is_owner(p, who) or p.id in reviews}
            for p in ops.visible_projects(session, who)
        ]


@config_router.post("/projects", status_code=status.HTTP_201_CREATED)
async def create_project(config: ProjectConfig, who: Owner, db: DB) -> dict[str, Any]:
    """Create a project (owners). Only `name`, `task_type` and `classes` (or `range`) are needed."""
    await run_in_threadpool(check_learning_setup, config)
    with db.write() as session:
        return ops.describe_project(ops.create_project(session, who, config))


@router.get("/projects/{project_id}")
async def get_project(project_id: ProjectId, who: User, db: DB) -> dict[str, Any]:
    """One project's configuration."""
    with db.read() as session:
        project = ops.load_project(session, project_id)
        ops.require_visible(session, project, who)
        return ops.describe_project(project, who)


@patch_router.patch("/projects/{project_id}")
async def update_project(project_id: ProjectId, patch: ProjectPatch, who: Owner, db: DB) -> dict[str, Any]:
    """Change settings (owner): only the fields sent change; the result must pass the rules of a
    new project. `{"open": true}` opens a draft to annotators. 422 for a setting that can no
    longer change: the project's `locked` lists them with the reason (the task type always; the
    classes or range once answers or labels exist; the mode once clips exist; `open` once open)."""
    try:
        if settings.touches_learning(patch):
            with db.read() as session:
                project = ops.load_project(session, project_id)
                ops.require_owner(project, who)
                config = settings.merged_config(project, patch)
            await run_in_threadpool(check_learning_setup, config)
        with db.write() as session:
            project = ops.load_project(session, project_id)
            return ops.describe_project(settings.update_project(session, project, who, patch), who)
    except ValidationError as exc:
        raise ProblemsError(problems_of(exc)) from None  # the merged configuration's, every one


@router.get("/projects/{project_id}/status", response_model=StatusOut)
async def project_status(project_id: ProjectId, who: User, db: DB, limits: Limits) -> dict[str, Any]:
    """Progress, answers used, labels done, model score history, budget left and storage used
    (members: the owner, and annotators who joined or were invited).

    An owner's call (the dashboard polls it) runs in the thread pool on a read-only session; an
    annotator's stays on the event loop, as their `next` and `answer` do."""
    if who.role in ("owner", "admin"):
        return await run_in_threadpool(_status, db.read_only, project_id, who, limits)
    return _status(db.read, project_id, who, limits)


def _status(
    session_of: Callable[[], AbstractContextManager[Session]],
    project_id: int,
    who: Principal,
    limits: UploadLimits,
) -> dict[str, Any]:
    with session_of() as session:
        project = ops.load_project(session, project_id)
        not_yet = f"project {project_id}'s status is for its members: answer a clip to join"
        ops.require_member(session, project, who, not_yet)
        out = ops.project_status(session, project)
        out["storage"] = storage_use(project, limits.project_quota_bytes)
        return out


@router.get("/projects/{project_id}/members")
async def list_members(project_id: ProjectId, who: User, db: DB) -> list[dict[str, Any]]:
    """Members of a project (its owner)."""
    with db.read() as session:
        project = ops.load_project(session, project_id)
        ops.require_owner(project, who)
        return ops.list_members(session, project)


@router.post("/projects/{project_id}/members", status_code=status.HTTP_201_CREATED, response_model=MemberOut)
async def add_member(project_id: ProjectId, body: MemberIn, who: User, db: DB) -> dict[str, Any]:
    """Invite a user (its owner); needed for invite-only projects."""
    with db.write() as session:
        project = ops.load_project(session, project_id)
        return ops.set_member(session, project, who, body.username, True, body.role)


@router.delete("/projects/{project_id}/members", response_model=MemberOut)
async def remove_member(
    project_id: ProjectId,
    who: User,
    db: DB,
    body: MemberIn | None = None,
    username: str | None = Query(None, description="Instead of a JSON body."),
) -> dict[str, Any]:
    """Remove a user (its owner): they get no more tasks or audio from the project."""
    name = body.username if body is not None else username
    if not name:
        raise InvalidError("say whom to remove: JSON body {username} or ?username=")
    with db.write() as session:
        return ops.set_member(session, ops.load_project(session, project_id), who, name, False)


router.include_router(config_router)
router.include_router(patch_router)
