"""Tasks: the annotator's next clip, their answer, and taking their last answer back."""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import FileResponse, JSONResponse

from listenloop.crowd.redundancy import CANT_TELL
from listenloop.engine.accounts import Principal
from listenloop.engine.config import TAG_TASKS
from listenloop.engine.live.tasks import next_task, submit_answer, task_media, undo_answer
from listenloop.engine.live.views import ProjectView, load_view
from listenloop.server.deps import DB, Actor, DataDir, IdleCache, ProjectId, TaskId, User
from listenloop.server.json_body import StrictJSONRoute
from listenloop.server.routers.clips import audio_response, spectrogram_response
from listenloop.server.schemas import AnswerIn, AnswerOut, NextOut, Question, UndoOut
from listenloop.store.database import Database, DirectConnection
from listenloop.store.models import Project

router = APIRouter(tags=["tasks"], route_class=StrictJSONRoute)


def question_body(project: Project | ProjectView) -> dict[str, Any]:
    """`question_for` as JSON, built once per distinct question (the same for every task)."""
    bounds = (project.range_min, project.range_max)
    return _question_json(project.task_type, tuple(project.classes or ()), bounds)


@lru_cache(maxsize=1024)
def _question_json(task_type: str, classes: tuple[str, ...], bounds: tuple[Any, Any]) -> dict[str, Any]:
    view = SimpleNamespace(
        task_type=task_type, classes=list(classes), range_min=bounds[0], range_max=bounds[1]
    )
    return question_for(view).model_dump(mode="json")  # type: ignore[arg-type]


def question_for(project: Project | ProjectView) -> Question:
    """The same question for every task of a project: choices, tags or a range."""
    if project.task_type == "continuous":
        lo, hi = float(project.range_min or 0.0), float(project.range_max or 0.0)
        return Question(type="continuous", text=f"Rate what you hear from {lo:g} to {hi:g}.", range=(lo, hi))
    if project.task_type in TAG_TASKS:
        return Question(
            type="multilabel",
            text="Which of these do you hear? Mark every one.",
            choices=list(project.classes),
            multiple=True,
        )
    return Question(type=project.task_type, text="What do you hear?", choices=[*project.classes, CANT_TELL])


@router.get(
    "/projects/{project_id}/next",
    response_model=NextOut,
    responses={204: {"description": "Nothing to do now"}},
)
async def next_(
    project_id: ProjectId,
    who: Actor,
    request: Request,
    ahead: Annotated[
        bool,
        Query(description="The task after the open one (a second lease), to load while the first plays."),
    ] = False,
) -> Any:
    """Lease the caller's next clip (a few minutes); 204 when there is nothing to do. It changes
    state, so the session cookie alone needs `X-Requested-With: listenloop` (bearer tokens don't)."""
    body = lease_next(request.app.state, project_id, who, ahead)
    if body is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    # A ready response skips FastAPI's second validation of the model: this is the hot path.
    return JSONResponse(body)


def lease_next(state: Any, project_id: int, who: Principal, ahead: bool) -> dict[str, Any] | None:
    """`next` as JSON, or None for a 204 (nothing to do now). The route's; the fast lane
    (`server/fast_lane.py`) runs the same two steps, `idle_now` and then `lease_next_in` in its
    group commit, so that both answer alike. `state`: the app's state."""
    if idle_now(state, project_id, who, ahead):
        return None
    db: Database = state.db  # not a dependency: one less to solve on the hot path
    with db.direct() as conn:
        return lease_next_in(conn, state, project_id, who, ahead)


def idle_now(state: Any, project_id: int, who: Principal, ahead: bool) -> bool:
    """Whether `next` found nothing for them a moment ago (a 204 without a transaction)."""
    idle: IdleCache = state.idle
    return not ahead and idle.idle(project_id, who.id)


def lease_next_in(
    conn: DirectConnection, state: Any, project_id: int, who: Principal, ahead: bool
) -> dict[str, Any] | None:
    """`next` inside the caller's write transaction, after `idle_now`."""
    idle: IdleCache = state.idle
    project = load_view(conn, project_id)
    assignment = next_task(conn, project, who, ahead=ahead)
    if assignment is None:
        if not ahead:
            idle.mark(project_id, who.id)
        return None
    question = question_body(project)
    task = assignment.task_id
    # No clip id: audio and spectrogram are addressed by the task, so that a repeated or control
    # clip comes under an id never seen before, like any other.
    return {
        "task_id": task,
        "audio_url": f"/api/v1/tasks/{task}/audio",
        "spectrogram_url": f"/api/v1/tasks/{task}/spectrogram.png",
        "question": question,
        "leased_until": assignment.leased_until.isoformat() + "Z",
    }


@router.get("/tasks/{task_id}/audio", response_class=FileResponse)
async def task_audio(task_id: TaskId, who: User, db: DB, data_dir: DataDir) -> FileResponse:
    """The audio of the task's clip as uploaded (undated: no Last-Modified or ETag): its
    annotator, and the project's owner. 403 someone else's task; 404 unknown."""
    with db.read() as session:
        rel, _ = task_media(session, task_id, who)
    return audio_response(data_dir, rel, f"task {task_id}", undated=True)


@router.get("/tasks/{task_id}/spectrogram.png", response_class=FileResponse)
async def task_spectrogram(task_id: TaskId, who: User, db: DB, data_dir: DataDir) -> FileResponse:
    """A spectrogram picture of the task's clip (its annotator, and the project's owner)."""
    with db.read() as session:
        rel, sha = task_media(session, task_id, who)
    return await spectrogram_response(data_dir, rel, sha, f"task {task_id}", undated=True)


@router.post("/tasks/{task_id}/answer", status_code=status.HTTP_201_CREATED, response_model=AnswerOut)
async def answer(task_id: TaskId, body: AnswerIn, who: User, request: Request) -> Any:
    """Answer a task: 201 with the points earned; 403 someone else's task; 409 answered or expired."""
    return JSONResponse(record_answer(request.app.state, task_id, who, body.answer), status_code=201)


def record_answer(
    state: Any, task_id: int, who: Principal, answer: Any, defer_aggregate: bool = False
) -> dict[str, Any]:
    """`answer` (201) as JSON; shared by the route and the fast lane. `state`: the app's state;
    `defer_aggregate`: see `engine.live.tasks.submit_answer`."""
    db: Database = state.db
    with db.direct() as conn:
        return submit_answer(conn, task_id, who, answer, defer_aggregate=defer_aggregate)


@router.delete(
    "/tasks/{task_id}/answer",
    response_model=UndoOut,
    responses={
        403: {"description": "Someone else's task"},
        404: {"description": "No such task"},
        409: {"description": "Nothing to undo, or the answer can no longer be undone (the reason says why)"},
    },
)
async def undo(task_id: TaskId, who: User, request: Request) -> Any:
    """Take back your last answer while its task is still yours (lease not run out), you have not
    answered since, and its clip is still open with no later answer on it. `next` then serves the
    same task again. 403 someone else's task; 404 unknown; 409 with the reason when it cannot be undone."""
    db: Database = request.app.state.db
    with db.direct() as conn:
        result = undo_answer(conn, task_id, who)
    idle: IdleCache = request.app.state.idle
    idle.forget(
        result["project_id"], who.id
    )  # the task is open again: a recent "nothing to do" no longer holds
    return JSONResponse(result)
