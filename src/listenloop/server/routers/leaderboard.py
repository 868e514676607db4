"""Gamification: the caller's points, level, streaks and badges, and the leaderboards.

The routes translate HTTP into `engine.gamification` calls; the rules live there. They are
plain functions on read-only connections: FastAPI runs them in its thread pool, so that their
sums over an annotator's or the whole crowd's rows never hold up the event loop that serves
`next` and `answer`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from listenloop.engine import gamification as game
from listenloop.engine import projects as ops
from listenloop.server.deps import DB, MAX_ID, ProjectId, User
from listenloop.server.json_body import StrictJSONRoute

router = APIRouter(tags=["gamification"], route_class=StrictJSONRoute)

Offset = Annotated[
    int,
    Query(
        ge=-game.MAX_OFFSET_MINUTES,
        le=game.MAX_OFFSET_MINUTES,
        description="Minutes east of UTC of the caller's time zone: where a day begins for streaks.",
    ),
]
Limit = Annotated[int, Query(ge=1, le=100, description="How many entries at most.")]


@router.get("/users/me/progress")
def my_progress(
    who: User,
    db: DB,
    offset_minutes: Offset = 0,
    project_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Also this project's points.")
    ] = None,
) -> dict[str, Any]:
    """The caller's points, level (`level_at`, `next_level_at`), day streaks, answers today and
    badges (`[{id, name, description, earned}]`), with `project` for `project_id`."""
    with db.read_only() as session:
        if project_id is not None:
            ops.require_visible(session, ops.load_project(session, project_id), who)
        return game.user_progress(session, who.id, project_id=project_id, offset_minutes=offset_minutes)


@router.get("/leaderboard")
def overall_leaderboard(who: User, db: DB, limit: Limit = game.LEADERBOARD_SIZE) -> dict[str, Any]:
    """Annotators by points over every project: `{entries: [{rank, username, points, answers,
    level, me}], me}`."""
    with db.read_only() as session:
        return game.leaderboard(session, limit=limit, me=who.id)


@router.get("/projects/{project_id}/leaderboard")
def project_leaderboard(
    project_id: ProjectId, who: User, db: DB, limit: Limit = game.LEADERBOARD_SIZE
) -> dict[str, Any]:
    """Annotators by points in one project (its members and owner): the same shape as /leaderboard."""
    with db.read_only() as session:
        project = ops.load_project(session, project_id)
        ops.require_member(
            session, project, who, f"the leaderboard of project {project_id} is for its members"
        )
        return game.leaderboard(session, project_id=project_id, limit=limit, me=who.id)
