"""The owner's dashboard: summary, annotators (flag, block), model runs and their pool maps.

Every route is for the project's owner (or an admin): annotators get 403. The numbers come
from `engine/dashboard.py`; the routes only translate HTTP to those calls. The reads are plain
functions, which FastAPI runs in its thread pool, on read-only sessions: an open dashboard's
polls never hold up the annotators' `next` and `answer` on the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from listenloop.engine import dashboard as dash
from listenloop.engine import projects as ops
from listenloop.engine.agreement import project_agreement
from listenloop.engine.config import ProjectConfig
from listenloop.server.deps import DB, MAX_ID, Owner, ProjectId, User
from listenloop.server.json_body import StrictJSONRoute
from listenloop.server.schemas import StatusOut

router = APIRouter(tags=["dashboard"], route_class=StrictJSONRoute)
RunId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="A model run's id.")]
Username = Annotated[str, PathParam(min_length=1, max_length=64, description="An annotator's username.")]


class LabelCount(BaseModel):
    """Labels of one class (or tag, or rating bin): from the crowd, the seed set and the owner's
    corrections."""

    label: str
    crowd: int
    seed: int
    expert: int = Field(0, description="Clips the owner corrected to this label (clip browser).")


class AnswersBar(BaseModel):
    """Crowd clips that took `answers` regular answers, by status (`open`: still queued)."""

    answers: int
    done: int
    low_agreement: int
    open: int


class FixedRedundancy(BaseModel):
    """What a fixed `k` answers per finished clip would have used, and what was saved."""

    k: int
    answers: int
    saved: int
    saved_share: float | None


class Savings(BaseModel):
    """Answers used against fixed redundancy; labels used against the pool."""

    finished_clips: int = Field(description="Crowd clips done or low-agreement (no seed or control clips).")
    answers_on_finished: int = Field(description="Regular answers those clips took.")
    mean_answers: float | None
    fixed: list[FixedRedundancy]
    regular_answers: int
    quality_answers: int = Field(description="Control and consistency answers (quality-control overhead).")
    answers_used: int = Field(description="All answers, every kind (what the budget counts).")
    labels: int = Field(description="Seed labels plus clips the crowd finished confidently.")
    pool: int = Field(description="Clips that are not control questions.")
    labels_share: float | None


class RedundancyOut(BaseModel):
    """The project's dynamic redundancy settings."""

    min: int
    max: int
    tau: float


class PassiveOut(BaseModel):
    """The model against its passive (random) arm, both scored on the same held-out random clips
    (the passive arm's labelled clips, each left out of both fits): what passive learning needed
    for the same score."""

    share: float
    model_labels: int | None
    model_score: float | None = Field(description="The newest round's model on the held-out clips.")
    passive_labels: int | None
    passive_score: float | None = Field(description="The passive arm on the same held-out clips.")
    passive_labels_needed: int | None = Field(
        description="Fewest random labels with which the passive arm reached the model's newest score "
        "(null: not reached yet)."
    )
    heldout_size: int | None = Field(
        None, description="How many held-out random clips the newest comparison scored both arms on."
    )


class ClassAgreement(BaseModel):
    """One class (or tag) against the rest: its answers, alpha and kappa (None: undefined)."""

    label: str
    answers: int
    alpha: float | None
    kappa: float | None


class AgreementOut(BaseModel):
    """Inter-annotator agreement of the regular answers ("can't tell" left out): Krippendorff's
    alpha (nominal, every clip with two answers or more) and Fleiss' kappa (the first
    `kappa_raters` answers of the `kappa_items` clips with at least that many), overall and per
    class; `answers_used` and `computed_at`: when it was computed."""

    alpha: float | None
    kappa: float | None
    items: int
    answers: int
    kappa_raters: int
    kappa_items: int
    classes: list[ClassAgreement]
    answers_used: int
    computed_at: str


class DashboardOut(BaseModel):
    """Everything the dashboard polls in one call."""

    project_id: int
    name: str
    task_type: str
    classes: list[str]
    redundancy: RedundancyOut
    trust_threshold: float
    status: StatusOut
    label_distribution: list[LabelCount]
    answers_histogram: list[AnswersBar]
    savings: Savings
    passive: PassiveOut
    newest_run: int | None
    agreement: AgreementOut | None = Field(
        None, description="The crowd's agreement as the background refresh last computed it."
    )


class ControlChecks(BaseModel):
    """Control questions checked and answered right."""

    checked: int
    right: int
    accuracy: float | None


class ConsistencyChecks(BaseModel):
    """Repeated clips checked and answered as the first time."""

    checked: int
    agreed: int
    agreement: float | None


class AnnotatorOut(BaseModel):
    """One annotator of the project."""

    username: str
    trust: float | None
    answers: int
    points: int
    checked: int
    right: int
    control: ControlChecks
    consistency: ConsistencyChecks
    owner: bool = Field(description="The project's owner (answering their own project).")
    member: bool
    active: bool
    blocked: bool
    flagged: bool
    flag_reason: str | None = Field(
        description="Why spammer detection flagged them (null: the owner's flag)."
    )
    flagged_automatically: bool = Field(
        description="Flagged by spammer detection: their answers count at chance level until unflagged."
    )


class FlagsIn(BaseModel):
    """What to change about an annotator; at least one field."""

    model_config = ConfigDict(extra="forbid")

    flagged: bool | None = Field(None, description="Mark (or unmark) for review.")
    blocked: bool | None = Field(None, description="Block: no more tasks from this project.")


class FlagsOut(BaseModel):
    """The annotator after the change."""

    username: str
    flagged: bool
    blocked: bool
    active: bool


class RunOut(BaseModel):
    """One learning round."""

    id: int
    labels: int
    score: float | None
    metric: str
    strategy: str
    cold_start: bool
    clips: int
    created_at: str
    has_map: bool


class MapOut(BaseModel):
    """A 2-D map of the pool: `points` are `[clip_id, x, y, predicted label, training label,
    pseudo]` (predicted None before there is a model; training label None for unlabelled clips;
    pseudo true where the model also trained on its own prediction for the clip: a
    self-training pseudo-label, never a label of the clip)."""

    run_id: int
    labels: int
    score: float | None
    metric: str
    method: str
    explained: list[float]
    points: list[tuple[int, float, float, str | None, str | None, bool]]


class OptionsOut(BaseModel):
    """What a new project may choose, and the configuration's defaults and descriptions."""

    feature_sets: list[str]
    learners: dict[str, list[str]]
    strategies: dict[str, list[str]] = Field(
        description="The strategies the live loop can run, per task type (classification: three classes "
        "or more; a two-class classification project may also use the binary list); regression = continuous."
    )
    schema_: dict[str, Any] = Field(alias="schema")


def _options() -> dict[str, Any]:
    """The learning core's registries (imports scikit-learn: run off the event loop)."""
    from listenloop.engine.config import live_strategy_task
    from listenloop.features.registry import platform_feature_sets
    from listenloop.learners.registry import CLASSIFIERS, REGRESSORS
    from listenloop.strategies.registry import allowed_strategies

    # per task type (classification: three classes or more); "regression" is continuous's
    kinds = ("binary", "multilabel", "events", "continuous")
    by_task = {t: allowed_strategies(*live_strategy_task(t, None), platform=True) for t in kinds}
    by_task["classification"] = allowed_strategies("classification", 3, platform=True)
    return {
        "feature_sets": platform_feature_sets(),
        "learners": {"classification": list(CLASSIFIERS), "regression": list(REGRESSORS)},
        "strategies": {**by_task, "regression": by_task["continuous"]},
        "schema": ProjectConfig.model_json_schema(),
    }


@router.get("/project-options", response_model=OptionsOut, response_model_by_alias=True)
async def project_options(who: Owner) -> dict[str, Any]:
    """Feature sets, learners and strategies a new project may use (owners), and the config schema."""
    return await run_in_threadpool(_options)


@router.get("/projects/{project_id}/dashboard", response_model=DashboardOut)
def dashboard(project_id: ProjectId, who: User, db: DB) -> dict[str, Any]:
    """Status, label distribution, answers per clip and savings (owner)."""
    with db.read_only() as session:
        project = ops.load_project(session, project_id)
        ops.require_owner(project, who)
        return dash.dashboard_summary(session, project)


@router.get("/projects/{project_id}/agreement", response_model=AgreementOut)
def agreement(project_id: ProjectId, who: User, db: DB) -> dict[str, Any]:
    """The crowd's agreement now (owner): Krippendorff's alpha and Fleiss' kappa, overall and per
    class, computed from every regular answer (the dashboard shows the background refresh's
    latest instead). 422 for a ratings project."""
    with db.read_only() as session:
        project = ops.load_project(session, project_id)
        ops.require_owner(project, who)
        return project_agreement(session, project)


@router.get("/projects/{project_id}/annotators", response_model=list[AnnotatorOut])
def annotators(project_id: ProjectId, who: User, db: DB) -> list[dict[str, Any]]:
    """Trust, answers, control accuracy, consistency agreement, flagged and blocked (owner)."""
    with db.read_only() as session:
        project = ops.load_project(session, project_id)
        ops.require_owner(project, who)
        return dash.annotator_table(session, project)


@router.patch("/projects/{project_id}/annotators/{username}", response_model=FlagsOut)
async def set_flags(
    project_id: ProjectId, username: Username, body: FlagsIn, who: User, db: DB
) -> dict[str, Any]:
    """Flag or block an annotator (owner): `{flagged?, blocked?}`; a blocked one gets no more tasks."""
    with db.write() as session:
        project = ops.load_project(session, project_id)
        return dash.set_member_flags(
            session, project, who, username, flagged=body.flagged, blocked=body.blocked
        )


@router.get("/projects/{project_id}/runs", response_model=list[RunOut])
def runs(project_id: ProjectId, who: User, db: DB) -> list[dict[str, Any]]:
    """The project's learning rounds, oldest first (owner)."""
    with db.read_only() as session:
        project = ops.load_project(session, project_id)
        ops.require_owner(project, who)
        return dash.model_runs(session, project)


@router.get("/projects/{project_id}/runs/{run_id}/map", response_model=MapOut)
def run_map(project_id: ProjectId, run_id: RunId, who: User, db: DB) -> dict[str, Any]:
    """One round's 2-D map of the pool, points coloured by predicted label (owner)."""
    with db.read_only() as session:
        project = ops.load_project(session, project_id)
        ops.require_owner(project, who)
        return dash.run_map(session, project, run_id)
