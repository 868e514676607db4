"""A project's inter-annotator agreement (`crowd.agreement`): computed from its stored answers,
and kept for the dashboard.

`project_agreement` reads every regular answer of the project (control, consistency and expert
answers are no independent judgements of a queue clip) in answer order and computes
Krippendorff's alpha and Fleiss' kappa, overall and per class: what
`GET /projects/{id}/agreement` and the JSONL export give. The dashboard polls every few
seconds, so it never computes them: the learning service refreshes them in the background
(`refresh`, when enough answers arrived since the last time, or some did and a while passed)
and logs each result as an `agreement` event, whose newest one the dashboard reads (`cached`,
one indexed lookup).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from listenloop.crowd.agreement import agreement
from listenloop.engine.config import TAG_TASKS
from listenloop.engine.errors import InvalidError
from listenloop.store.database import Database
from listenloop.store.models import Event, Project, Task, utcnow

AGREEMENT_TASKS = ("classification", "binary", *TAG_TASKS)  # answers that are classes or tag sets
EVENT = "agreement"
REFRESH_ANSWERS = 10  # new answers (any kind) before a refresh is due ...
REFRESH_SHARE = 0.1  # ... or this share of the answers the last one saw, whichever is larger
REFRESH_AFTER = timedelta(minutes=5)  # ... or any new answer, this long after the last one


def require_categorical(project: Project) -> None:
    """InvalidError (422) for a project whose answers are no classes (ratings)."""
    if project.task_type not in AGREEMENT_TASKS:
        raise InvalidError(
            f"project {project.id} is a {project.task_type} project: agreement statistics are for "
            f"{', '.join(AGREEMENT_TASKS)} projects"
        )


def project_agreement(session: Session, project: Project, now: datetime | None = None) -> dict[str, Any]:
    """Alpha and kappa of the project's regular answers, overall and per class (`crowd.agreement.
    agreement`), with `answers_used` (the project's count when computed) and `computed_at`."""
    require_categorical(project)
    answers_used = int(project.answers_used or 0)
    rows = session.execute(
        select(Task.clip_id, Task.answer)
        .where(Task.project_id == project.id, Task.kind == "regular", Task.answered_at.is_not(None))
        .order_by(Task.answered_at, Task.id)
        .execution_options(yield_per=10_000)
    )
    items: list[int] = []
    labels: list[str] = []
    for clip_id, answer in rows:
        items.append(clip_id)
        labels.append(answer)
    result = agreement(items, labels, list(project.classes or []), multilabel=project.task_type in TAG_TASKS)
    moment = now or utcnow()
    return {
        **result,
        "answers_used": answers_used,
        "computed_at": moment.isoformat(timespec="seconds") + "Z",
    }


def cached(session: Session, project_id: int) -> dict[str, Any] | None:
    """The newest agreement the background refresh stored (None: none yet)."""
    return session.scalar(
        select(Event.data)
        .where(Event.project_id == project_id, Event.kind == EVENT)
        .order_by(Event.id.desc())
        .limit(1)
    )


def _last(session: Session, project_id: int) -> tuple[int, datetime] | None:
    row = session.execute(
        select(Event.data, Event.created_at)
        .where(Event.project_id == project_id, Event.kind == EVENT)
        .order_by(Event.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (int(row.data.get("answers_used", 0)), row.created_at)


def is_due(answers_used: int, last: tuple[int, datetime] | None, now: datetime) -> bool:
    """Whether a refresh is due: two answers at least, and enough new ones since the last one."""
    if answers_used < 2:
        return False
    if last is None:
        return True
    seen, when = last
    grown = answers_used - seen
    if grown <= 0:
        return False
    return grown >= max(REFRESH_ANSWERS, REFRESH_SHARE * seen) or now - when >= REFRESH_AFTER


def refresh(db: Database, now: datetime | None = None) -> list[int]:
    """Compute and store the agreement of every project that is due one; the projects refreshed."""
    now = now or utcnow()
    with db.read() as session:
        projects = session.execute(
            select(Project.id, Project.answers_used).where(Project.task_type.in_(AGREEMENT_TASKS))
        ).all()
        due = [pid for pid, used in projects if is_due(int(used or 0), _last(session, pid), now)]
    done = []
    for pid in due:
        with db.read() as session:
            project = session.get(Project, pid)
            if project is None:
                continue
            result = project_agreement(session, project, now)
        with db.write() as session:
            session.add(Event(project_id=pid, kind=EVENT, data=result, created_at=now))
        done.append(pid)
    return done
