"""The owner's review queue, discarding clips, guidelines and examples, and a project's lifecycle
(pause, resume, archive, delete, answer retention): issue 21's routes around the loop."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from listenloop.engine import clips as browser
from listenloop.engine import guidelines as guides
from listenloop.engine import lifecycle
from listenloop.engine import projects as ops
from listenloop.engine import review as queue
from listenloop.server.deps import DB, MAX_ID, ClipId, DataDir, ProjectId, User
from listenloop.server.json_body import StrictJSONRoute
from listenloop.server.routers.clips import ClipOut, PredictionRun, audio_response

router = APIRouter(tags=["review"], route_class=StrictJSONRoute)


# -- the review queue -----------------------------------------------------------------------


class ReviewRow(BaseModel):
    """One clip of the review queue, with why it is there and its score."""

    clip_id: int
    file: str
    status: str
    label: str | None = Field(description="The crowd's label so far (null: none).")
    confidence: float | None
    n_answers: int
    cant_tell: int = Field(description='Regular answers that were "can\'t tell".')
    predicted: str | None = Field(description="The newest round's prediction (null: not in its map).")
    soft: dict[str, float]
    reasons: list[str] = Field(description="low_agreement, disagreement, cant_tell (one or more).")
    p_change: float = Field(description="The chance a correction changes the label (1 - soft share).")
    adds_label: bool = Field(description="The clip has no training label yet: a correction adds one.")
    score: float = Field(description="p_change + adds_label: the queue's order, highest first.")
    duration: float


class ReviewPage(BaseModel):
    """One page of the review queue."""

    kind: str
    total: int
    offset: int
    limit: int
    prediction_run: PredictionRun | None
    score: str = Field(description="How the score is computed.")
    clips: list[ReviewRow]


@router.get("/projects/{project_id}/review", response_model=ReviewPage)
def review_queue(
    project_id: ProjectId,
    who: User,
    db: DB,
    kind: Annotated[
        str, Query(max_length=20, description="all, low_agreement, disagreement or cant_tell.")
    ] = "all",
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=browser.MAX_PAGE)] = browser.DEFAULT_PAGE,
) -> dict[str, Any]:
    """The clips where a correction would change most, highest score first (owner and reviewers;
    in the thread pool, on a read-only session). Correct one with `POST …/clips/{id}/label`, or
    take it out with `POST …/clips/{id}/discard`."""
    with db.read_only() as session:
        project = ops.load_project(session, project_id)
        return queue.review_queue(session, project, who, kind=kind, offset=offset, limit=limit)


@router.post("/projects/{project_id}/clips/{clip_id}/discard", response_model=ClipOut)
async def discard_clip(project_id: ProjectId, clip_id: ClipId, who: User, db: DB) -> dict[str, Any]:
    """Take a clip out of the dataset (owner and reviewers): served to nobody, no training label, no
    label in exports; its answers stay. A later label (`…/label`) brings it back. 409 for a
    control question or a seed clip."""
    with db.write() as session:
        project = ops.load_project(session, project_id)
        return browser.discard_clip(session, project, who, clip_id)


# -- guidelines and examples -----------------------------------------------------------------


class ExampleOut(BaseModel):
    """An example clip of a class."""

    example_id: int
    label: str
    audio_url: str


class GuideOut(BaseModel):
    """The guidelines (Markdown and its sanitised HTML) and the examples per class."""

    project_id: int
    markdown: str
    html: str = Field(description="Rendered on the server, raw HTML escaped: safe to insert as is.")
    examples: list[ExampleOut]
    examples_as_controls: bool | None = Field(None, description="The owner's option (others: null).")


class GuideIn(BaseModel):
    """New guidelines and/or the examples-as-controls option (a field left out stays)."""

    model_config = ConfigDict(extra="forbid")

    markdown: str | None = Field(None, max_length=guides.MAX_GUIDELINES)
    examples_as_controls: bool | None = None


class ExampleIn(BaseModel):
    """A clip of the project as an example of a class."""

    model_config = ConfigDict(extra="forbid")

    clip_id: int = Field(ge=1, le=MAX_ID)
    label: str = Field(min_length=1, max_length=500)


@router.get("/projects/{project_id}/guidelines", response_model=GuideOut)
async def get_guidelines(project_id: ProjectId, who: User, db: DB) -> dict[str, Any]:
    """The guidelines and examples (anyone who may see the project)."""
    with db.read() as session:
        return guides.guide(session, ops.load_project(session, project_id), who)


@router.put("/projects/{project_id}/guidelines", response_model=GuideOut)
async def put_guidelines(project_id: ProjectId, body: GuideIn, who: User, db: DB) -> dict[str, Any]:
    """Set the guidelines (Markdown; "" clears them) and whether examples serve as control
    questions (owner)."""
    with db.write() as session:
        project = ops.load_project(session, project_id)
        return guides.set_guidelines(session, project, who, body.markdown, body.examples_as_controls)


@router.post("/projects/{project_id}/examples", response_model=GuideOut, status_code=201)
async def add_example(project_id: ProjectId, body: ExampleIn, who: User, db: DB) -> dict[str, Any]:
    """Mark a clip as an example of a class (owner)."""
    with db.write() as session:
        project = ops.load_project(session, project_id)
        return guides.add_example(session, project, who, body.clip_id, body.label)


@router.delete("/projects/{project_id}/examples/{clip_id}", response_model=GuideOut)
async def remove_example(project_id: ProjectId, clip_id: ClipId, who: User, db: DB) -> dict[str, Any]:
    """Unmark an example (owner)."""
    with db.write() as session:
        project = ops.load_project(session, project_id)
        return guides.remove_example(session, project, who, clip_id)


@router.get("/projects/{project_id}/examples/{clip_id}/audio", response_class=FileResponse)
async def example_audio(
    project_id: ProjectId, clip_id: ClipId, who: User, db: DB, data_dir: DataDir
) -> FileResponse:
    """An example's audio (anyone who may see the project)."""
    with db.read() as session:
        rel, _ = guides.example_media(session, ops.load_project(session, project_id), who, clip_id)
    return audio_response(data_dir, rel, f"example {clip_id}")


# -- lifecycle ---------------------------------------------------------------------------------


class StateOut(BaseModel):
    """A project's lifecycle state after the change."""

    project_id: int
    state: str = Field(description="active, paused or archived.")


class DeleteIn(BaseModel):
    """The confirmation of a delete: the project's name, exactly."""

    model_config = ConfigDict(extra="forbid")

    confirm: str = Field(max_length=200)


class DeletedOut(BaseModel):
    """What a delete removed (the audit event `project_deleted` keeps the same)."""

    project: int
    name: str
    owner_id: int
    clips: int
    answers: int
    files_removed: int
    files_kept: int


class RetentionIn(BaseModel):
    """How many days raw answers of a final clip are kept (null: for ever)."""

    model_config = ConfigDict(extra="forbid")

    days: int | None = Field(ge=0, le=lifecycle.MAX_RETENTION_DAYS)


class RetentionOut(BaseModel):
    """The project's retention after the change."""

    project_id: int
    retention_days: int | None


def _state_route(action: str) -> Any:
    async def change(project_id: ProjectId, who: User, db: DB) -> dict[str, Any]:
        with db.write() as session:
            project = ops.load_project(session, project_id)
            return lifecycle.change_state(session, project, who, action)

    change.__name__ = f"{action}_project"
    change.__doc__ = {
        "pause": "Pause the project (owner): annotators get 409 from `next` until it is resumed; "
        "answers to open leases still count.",
        "resume": "Resume a paused or archived project (owner).",
        "archive": "Archive the project (owner): read-only; no tasks, answers, uploads or rounds.",
    }[action]
    return change


for _action in lifecycle.ACTIONS:
    router.add_api_route(
        f"/projects/{{project_id}}/{_action}",
        _state_route(_action),
        methods=["POST"],
        response_model=StateOut,
    )


@router.delete("/projects/{project_id}", response_model=DeletedOut)
async def delete_project(project_id: ProjectId, body: DeleteIn, who: User, db: DB, data_dir: DataDir) -> Any:
    """Delete the project for good (owner), confirmed by its name in the body (`{"confirm": NAME}`;
    422 otherwise, and nothing is deleted): its clips, answers, runs and members, its model versions'
    files, and its audio and spectrogram files no other project uses. An audit event
    (`project_deleted`) outlives it."""
    with db.write() as session:
        project = ops.load_project(session, project_id)
        deletion = lifecycle.delete_project(session, project, who, body.confirm)
    counts = await run_in_threadpool(lifecycle.remove_files, data_dir, deletion.files)
    await run_in_threadpool(lifecycle.remove_models, data_dir, project_id)
    with db.write() as session:
        return lifecycle.record_files(session, deletion, counts)


@router.put("/projects/{project_id}/retention", response_model=RetentionOut)
async def put_retention(project_id: ProjectId, body: RetentionIn, who: User, db: DB) -> dict[str, Any]:
    """Keep raw answers of a final clip `days` days after it became final (owner; null: for ever).
    A background job deletes older ones hourly; aggregated labels stay."""
    with db.write() as session:
        project = ops.load_project(session, project_id)
        return lifecycle.set_retention(session, project, who, body.days)
