"""The owner's clip browser: a project's clips filtered, sorted and paged; one clip with its
answers, soft label and the model's prediction; the owner's expert correction of a label.

Filters, order, count and page are one SQL query each (LIMIT/OFFSET over the clips' indexes),
so a page of a 100,000-clip project costs the same Python work as a page of a small one.

A clip's label, as the browser and the exports show it, comes from one of four sources, the
first that applies: `gold` (a control question's known answer), `expert` (the owner's
correction here), `seed` (the owner's seed label) or `crowd` (the aggregate of the crowd's
answers, `Clip.label`). A correction is stored twice: as an answer of the owner with kind
`expert` (so that the answers export lists it) and as `Clip.expert_label`, which overrides the
crowd's aggregate wherever a clip's label is read (exports, training, the dashboard) and which
later crowd answers to the clip never touch. The clip becomes `done` with that label.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, literal, or_, select, true
from sqlalchemy.orm import Session

from listenloop.crowd.redundancy import CANT_TELL
from listenloop.engine.accounts import Principal
from listenloop.engine.config import TAG_TASKS
from listenloop.engine.dashboard import _has_map
from listenloop.engine.errors import ConflictError, InvalidError, NotFoundError
from listenloop.engine.labels import TAG_SEP, normalize_label
from listenloop.engine.learning.service import training_label
from listenloop.engine.lifecycle import require_writable
from listenloop.engine.live.aggregate import soft_by_clip
from listenloop.engine.projects import require_reviewer
from listenloop.store.models import (
    CLIP_STATUSES,
    Clip,
    Event,
    ModelRun,
    Project,
    Task,
    User,
    WorkerTrust,
    utcnow,
)

DISCARDED = "discarded"
CONTROL = "control"  # the browser's status of a control question (its queue status means nothing)
STATUS_FILTERS = (*CLIP_STATUSES, CONTROL)
SOURCES = ("gold", "expert", "seed", "crowd")
EXPERT = "expert"  # the task kind of a correction
DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_ANSWERS = 200  # answers listed per clip (a control clip may have thousands): the newest

# A clip's status, label, its source and its confidence as the browser and the exports show them.
_GOLD = Clip.is_gold == true()
_EXPERT = Clip.expert_label.is_not(None)
_SEED = Clip.seed_label.is_not(None)
clip_label = case(
    (_GOLD, Clip.gold_label), (_EXPERT, Clip.expert_label), (_SEED, Clip.seed_label), else_=Clip.label
)
clip_source = case((_GOLD, "gold"), (_EXPERT, "expert"), (_SEED, "seed"), else_="crowd")
clip_confidence = case((_GOLD | _EXPERT | _SEED, cast(literal(1.0), Float)), else_=Clip.confidence)
clip_status = case((_GOLD, CONTROL), else_=Clip.status)
SORTS = {
    "id": Clip.id,
    "file": Clip.file_name,
    "confidence": clip_confidence,
    "answers": Clip.n_answers,
    "updated": Clip.updated_at,
}
SORT_CHOICES = tuple(k for key in SORTS for k in (key, f"-{key}"))


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds") + "Z"


def _statuses(text: str) -> list[str]:
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STATUS_FILTERS]
    if unknown:
        raise InvalidError(f"status {unknown[0]!r} is not one of {', '.join(STATUS_FILTERS)}")
    return wanted


def _label_filter(project: Project, label: str) -> Any:
    """SQL: the clip's label is `label` (a class), or holds the tag `label` (multi-label)."""
    if project.task_type == "continuous":
        raise InvalidError("the label filter is for projects with classes; ratings have none to pick")
    classes = list(project.classes or [])
    if label not in classes and label != CANT_TELL:
        raise InvalidError(f"label {label!r} is not one of {classes}")
    if project.task_type in TAG_TASKS and label != CANT_TELL:
        return (literal(TAG_SEP) + clip_label + literal(TAG_SEP)).contains(
            f"{TAG_SEP}{label}{TAG_SEP}", autoescape=True
        )
    return clip_label == label


def _confidence(name: str, value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise InvalidError(f"{name} must be between 0 and 1, not {value:g}")
    return value


def _conditions(
    session: Session,
    project: Project,
    *,
    status: str | None,
    label: str | None,
    min_confidence: float | None,
    max_confidence: float | None,
    annotator: str | None,
    source: str | None,
) -> list[Any]:
    """The WHERE clauses of a filter; InvalidError (422) names the first bad one."""
    where: list[Any] = [Clip.project_id == project.id]
    if status:
        wanted = _statuses(status)
        regular = [s for s in wanted if s != CONTROL]
        either = [_GOLD] if CONTROL in wanted else []
        if regular:
            either.append(and_(~_GOLD, Clip.status.in_(regular)))
        where.append(or_(*either))
    if label:
        where.append(_label_filter(project, label))
    low = _confidence("min_confidence", min_confidence)
    high = _confidence("max_confidence", max_confidence)
    if low is not None and high is not None and low > high:
        raise InvalidError(f"min_confidence ({low:g}) is above max_confidence ({high:g})")
    if low is not None:
        where.append(clip_confidence >= low)
    if high is not None:
        where.append(clip_confidence <= high)
    if annotator:
        user_id = session.scalar(select(User.id).where(User.username == annotator))
        if user_id is None:
            raise InvalidError(f"annotator {annotator!r} does not exist")
        # driven from the annotator's tasks (ix_tasks_open), not a lookup per clip of the project
        answered = select(Task.clip_id).where(
            Task.project_id == project.id, Task.annotator_id == user_id, Task.answered_at.is_not(None)
        )
        where.append(Clip.id.in_(answered))
    if source:
        if source not in SOURCES:
            raise InvalidError(f"source {source!r} is not one of {', '.join(SOURCES)}")
        where.append(clip_source == source)
    return where


def _order(sort: str) -> list[Any]:
    key = sort.removeprefix("-")
    if key not in SORTS:
        raise InvalidError(f"sort {sort!r} is not one of {', '.join(SORT_CHOICES)}")
    column = SORTS[key]
    descending = sort.startswith("-")
    first = (column.desc() if descending else column.asc()).nulls_last()
    return [first, Clip.id.desc() if descending else Clip.id.asc()]


def newest_predictions(session: Session, project: Project) -> tuple[dict[str, Any] | None, dict[int, str]]:
    """The newest learning round that stored a pool map: `({run_id, round, labels, at}, {clip_id:
    predicted label})`, or `(None, {})`. The map holds a sample of at most `MAP_POINTS` clips
    (`engine/learning/pool_map.py`): the model's prediction is known for those only."""
    run = session.execute(
        select(ModelRun.id, ModelRun.labels, ModelRun.created_at, ModelRun.map)
        .where(ModelRun.project_id == project.id, _has_map())
        .order_by(ModelRun.id.desc())
        .limit(1)
    ).first()
    if run is None or not isinstance(run.map, dict):
        return None, {}
    rounds = session.scalar(
        select(func.count()).where(ModelRun.project_id == project.id, ModelRun.id <= run.id)
    )
    predicted = {
        int(p[0]): str(p[3])
        for p in run.map.get("points") or []
        if isinstance(p, list | tuple) and len(p) >= 4 and p[3] is not None
    }
    info = {"run_id": run.id, "round": int(rounds or 0), "labels": run.labels, "at": _when(run.created_at)}
    return info, predicted


def browse_clips(
    session: Session,
    project: Project,
    who: Principal,
    *,
    status: str | None = None,
    label: str | None = None,
    min_confidence: float | None = None,
    max_confidence: float | None = None,
    annotator: str | None = None,
    source: str | None = None,
    sort: str = "id",
    offset: int = 0,
    limit: int = DEFAULT_PAGE,
) -> dict[str, Any]:
    """One page of the project's clips (owner): `{total, offset, limit, sort, prediction_run,
    clips: [{clip_id, file, status, source, label, confidence, n_answers, predicted, duration,
    updated_at}]}`.

    `status`: comma-separated clip states (`queued`, `done`, `low_agreement`, `pool`, `passed`)
    and `control`; `label`: a class (multi-label: clips holding that tag); `min_confidence` and
    `max_confidence`: bounds on the label's confidence (1 for gold, expert and seed labels; clips
    without one are left out by either bound); `annotator`: clips that username answered (any
    kind); `source`: gold, expert, seed or crowd; `sort`: id, file, confidence, answers or
    updated, `-` first for descending. InvalidError (422) for a bad filter.
    """
    require_reviewer(session, project, who)
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidError(f"limit must be from 1 to {MAX_PAGE}, not {limit}")
    if offset < 0:
        raise InvalidError(f"offset must be at least 0, not {offset}")
    where = _conditions(
        session,
        project,
        status=status,
        label=label,
        min_confidence=min_confidence,
        max_confidence=max_confidence,
        annotator=annotator,
        source=source,
    )
    order = _order(sort)
    total = session.scalar(select(func.count()).select_from(Clip).where(*where)) or 0
    rows = session.execute(
        select(
            Clip.id,
            Clip.file_name,
            clip_status.label("status"),
            clip_source.label("source"),
            clip_label.label("label"),
            clip_confidence.label("confidence"),
            Clip.n_answers,
            Clip.duration,
            Clip.updated_at,
        )
        .where(*where)
        .order_by(*order)
        .offset(offset)
        .limit(limit)
    ).all()
    run, predicted = newest_predictions(session, project) if rows else (None, {})
    return {
        "total": int(total),
        "offset": offset,
        "limit": limit,
        "sort": sort,
        "prediction_run": run,
        "clips": [
            {
                "clip_id": r.id,
                "file": r.file_name,
                "status": r.status,
                "source": r.source,
                "label": r.label,
                "confidence": None if r.confidence is None else float(r.confidence),
                "n_answers": r.n_answers,
                "predicted": predicted.get(r.id),
                "duration": round(float(r.duration), 3),
                "updated_at": _when(r.updated_at),
            }
            for r in rows
        ],
    }


def _project_clip(session: Session, project: Project, clip_id: int) -> Clip:
    clip = session.get(Clip, clip_id)
    if clip is None or clip.project_id != project.id:
        raise NotFoundError(f"project {project.id} has no clip {clip_id}")
    return clip


def _source(clip: Clip) -> tuple[str, str | None, float | None]:
    """(source, label, confidence) of a clip: in Python what `clip_source` and the others say in SQL."""
    if clip.is_gold:
        return "gold", clip.gold_label, 1.0
    if clip.expert_label is not None:
        return "expert", clip.expert_label, 1.0
    if clip.seed_label is not None:
        return "seed", clip.seed_label, 1.0
    return "crowd", clip.label, clip.confidence


def clip_detail(session: Session, project: Project, who: Principal, clip_id: int) -> dict[str, Any]:
    """One clip for its owner: what the list shows, plus the crowd's aggregate (`crowd`), the soft
    label the exports carry (`soft`), the seed, known and expert labels, every answer (newest
    `MAX_ANSWERS`: `{task_id, annotator, answer, kind, answered_at, trust}`), the model's
    prediction from the newest round's map, and the audio and spectrogram URLs."""
    require_reviewer(session, project, who)
    clip = _project_clip(session, project, clip_id)
    answered = and_(Task.clip_id == clip.id, Task.answered_at.is_not(None))
    total = session.scalar(select(func.count()).select_from(Task).where(answered)) or 0
    rows = session.execute(
        select(Task.id, User.username, Task.answer, Task.kind, Task.answered_at, WorkerTrust.trust)
        .join(User, User.id == Task.annotator_id)
        .outerjoin(
            WorkerTrust,
            and_(WorkerTrust.project_id == Task.project_id, WorkerTrust.user_id == Task.annotator_id),
        )
        .where(answered)
        .order_by(Task.answered_at.desc(), Task.id.desc())
        .limit(MAX_ANSWERS)
    ).all()
    answers = [
        {
            "task_id": r.id,
            "annotator": r.username,
            "answer": r.answer,
            "kind": r.kind,
            "answered_at": r.answered_at.isoformat(timespec="milliseconds") + "Z",
            "trust": None if r.trust is None or r.kind == EXPERT else round(float(r.trust), 4),
        }
        for r in reversed(rows)
    ]
    expert = next((a for a in reversed(answers) if a["kind"] == EXPERT), None)
    run, predicted = newest_predictions(session, project)
    source, label, confidence = _source(clip)
    return {
        "clip_id": clip.id,
        "file": clip.file_name,
        "status": CONTROL if clip.is_gold else clip.status,
        "source": source,
        "label": label,
        "confidence": None if confidence is None else float(confidence),
        "n_answers": clip.n_answers,
        "duration": round(float(clip.duration), 3),
        "sample_rate": clip.sample_rate,
        "updated_at": _when(clip.updated_at),
        "crowd": {  # what the crowd's answers say (nothing before the first regular answer)
            "label": clip.label if clip.n_answers else None,
            "confidence": None if clip.confidence is None or not clip.n_answers else float(clip.confidence),
        },
        "soft": soft_by_clip(session, project, [clip.id]).get(clip.id, {}),
        "seed_label": clip.seed_label,
        "gold_label": clip.gold_label if clip.is_gold else None,
        "expert": None
        if clip.expert_label is None
        else {
            "label": clip.expert_label,
            "annotator": expert["annotator"] if expert else None,
            "at": expert["answered_at"] if expert else None,
        },
        "answers": answers,
        "answers_total": int(total),
        "prediction": None
        if run is None
        else {**run, "label": predicted.get(clip.id), "in_sample": clip.id in predicted},
        "classes": list(project.classes or []),
        "task_type": project.task_type,
        "audio_url": f"/api/v1/clips/{clip.id}/audio",
        "spectrogram_url": f"/api/v1/clips/{clip.id}/spectrogram.png",
    }


def correct_label(
    session: Session,
    project: Project,
    who: Principal,
    clip_id: int,
    value: Any,
    now: datetime | None = None,
    control: bool = False,
) -> dict[str, Any]:
    """The owner's (or a reviewer's) expert label for a clip: stored as their answer (kind
    `expert`; a second correction replaces the first, the event log keeps both) and as the clip's
    `expert_label`; the clip becomes done with that label (a discarded clip comes back so). With
    `control` it also becomes a control question with that known answer (classes only).
    Returns `clip_detail`.

    InvalidError: not a label of this project ("can't tell" is no correction); ConflictError: a
    control question (its known answer comes from the control-question upload), or an archived
    project; NotFoundError: no such clip in the project.
    """
    require_reviewer(session, project, who)
    require_writable(project)
    now = now or utcnow()
    clip = _project_clip(session, project, clip_id)
    if clip.is_gold:
        raise ConflictError(
            f"clip {clip_id} is a control question: change its known answer by uploading control questions"
        )
    label = normalize_label(project, value)
    if control and project.task_type == "continuous":
        raise InvalidError("a rating project's control questions come from the control-question upload")
    before_source, before_label, _ = _source(clip)
    had_label = (
        training_label(
            clip.seed_label, clip.status, clip.is_gold, clip.gold_label, clip.label, clip.expert_label
        )
        is not None
    )
    task = session.scalar(
        select(Task).where(Task.clip_id == clip.id, Task.annotator_id == who.id, Task.kind == EXPERT)
    )
    if task is None:
        task = Task(
            project_id=project.id,
            clip_id=clip.id,
            annotator_id=who.id,
            kind=EXPERT,
            created_at=now,
            leased_until=now,
            points=0,
        )
        session.add(task)
    task.answer = label
    task.answered_at = now
    clip.expert_label = label
    clip.status = "done"
    clip.updated_at = now
    if control:
        clip.is_gold = True
        clip.gold_label = label
    if not had_label:  # the learning service's running count of training labels
        project.labels_count = Project.labels_count + 1
    session.add(
        Event(
            project_id=project.id,
            user_id=who.id,
            kind="clip_corrected",
            data={
                "clip": clip.id,
                "label": label,
                "previous": before_label,
                "previous_source": before_source,
                **({"control": True} if control else {}),
            },
            created_at=now,
        )
    )
    session.flush()
    return clip_detail(session, project, who, clip.id)


def discard_clip(
    session: Session, project: Project, who: Principal, clip_id: int, now: datetime | None = None
) -> dict[str, Any]:
    """Take a clip out of the dataset (owner or reviewer): status `discarded`, so it is served to
    nobody, trains nothing and has no label in exports; its answers stay, and the owner's
    earlier correction is dropped (the event log keeps it). A later correction brings it back.
    Returns `clip_detail`.

    ConflictError: a control question or a seed clip (their labels come from the owner's uploads),
    or an archived project; NotFoundError: no such clip.
    """
    require_reviewer(session, project, who)
    require_writable(project)
    now = now or utcnow()
    clip = _project_clip(session, project, clip_id)
    if clip.is_gold or clip.seed_label is not None:
        what = "a control question" if clip.is_gold else "a seed clip"
        raise ConflictError(f"clip {clip_id} is {what}: its label comes from your upload; it stays")
    if clip.status == DISCARDED:
        return clip_detail(session, project, who, clip.id)
    had_label = (
        training_label(clip.seed_label, clip.status, False, None, clip.label, clip.expert_label) is not None
    )
    before = {"previous": clip.status, "expert_label": clip.expert_label}
    clip.status = DISCARDED
    clip.expert_label = None
    clip.updated_at = now
    if had_label:
        project.labels_count = Project.labels_count - 1
    session.add(
        Event(project_id=project.id, user_id=who.id, kind="clip_discarded", data={"clip": clip.id, **before})
    )
    session.flush()
    return clip_detail(session, project, who, clip.id)
