"""The live request path's statements on tasks (and the rows they touch): `next`, `answer`, `undo`.

Core statements built once at import with bind parameters, run on the driver's cursor
(`store/prepared.py`) inside the caller's write transaction; the rules that use them are in
`engine/live/tasks.py`. Every one is a seek on an index (tests/test_request_path_plans.py explains
them on SQLite and PostgreSQL): their cost does not grow with the project or its history.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, case, false, func, or_, select, true
from sqlalchemy import bindparam as bp
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from listenloop.crowd.checks import CONTROL_REUSE_AFTER
from listenloop.crowd.redundancy import CANT_TELL
from listenloop.crowd.worker_prior import PRIOR_TRUST
from listenloop.store.models import (
    Clip,
    Event,
    PendingAggregate,
    Project,
    ProjectMember,
    Task,
    WorkerTrust,
)
from listenloop.store.prepared import Prepared

P, C, T = Project.__table__, Clip.__table__, Task.__table__
W, M, E = WorkerTrust.__table__, ProjectMember.__table__, Event.__table__
PA = PendingAggregate.__table__


def _mine(user: Any) -> Any:
    """EXISTS: the annotator already has a task (of any kind) on the outer query's clip."""
    mine = T.alias("mine")
    return select(mine.c.id).where(mine.c.clip_id == C.c.id, mine.c.annotator_id == user).exists()


MEMBER = Prepared(select(M.c.active).where(M.c.project_id == bp("project"), M.c.user_id == bp("user")))
JOIN = Prepared(
    M.insert().values(project_id=bp("project"), user_id=bp("user"), active=True, added_at=bp("now"))
)
# The annotator's unanswered tasks of the project, live or expired (reclaiming keeps them few):
# the live ones are served again, long-expired ones are a sign to reclaim. Unsorted: an ORDER BY
# id would walk all their tasks of the project in id order instead of seeking ix_tasks_open.
UNANSWERED = Prepared(
    select(T.c.id, T.c.clip_id, T.c.leased_until).where(
        T.c.project_id == bp("project"), T.c.annotator_id == bp("user"), T.c.answered_at.is_(None)
    )
)
LIVE = Prepared(
    select(func.count())
    .select_from(T)
    .where(T.c.project_id == bp("project"), T.c.answered_at.is_(None), T.c.leased_until > bp("now"))
)
_lease = T.alias("lease")
_live_on_clip = (
    select(func.count())
    .select_from(_lease)
    .where(
        _lease.c.clip_id == C.c.id,
        _lease.c.kind == "regular",
        _lease.c.answered_at.is_(None),
        _lease.c.leased_until > bp("now"),
    )
    .scalar_subquery()
)
# A clip is handed out while its answers plus live leases stay below what it may still need:
# up to the policy's minimum at once, then one at a time, never beyond the maximum. With n
# answers and L live leases (min <= max): n + L < max and (L = 0 or n + L < min), which is
# n < max and L < (min - n if n < min else 1): the live-lease count is evaluated once per row.
REGULAR = Prepared(
    select(C.c.id)
    .where(
        C.c.project_id == bp("project"),
        C.c.status == "queued",
        C.c.is_gold == false(),
        C.c.n_answers < bp("rmax"),
        ~_mine(bp("user")),
        _live_on_clip < case((C.c.n_answers < bp("rmin"), bp("rmin") - C.c.n_answers), else_=1),
    )
    .order_by(C.c.rank, C.c.id)
    .limit(1)
)
REGULAR_PG = Prepared(REGULAR.stmt.with_for_update(skip_locked=True, of=C))
# The id of the annotator's task CONTROL_REUSE_AFTER places before their newest: a control clip
# they last had at or before it may come back (they had that many other tasks since).
CUT = Prepared(
    select(T.c.id)
    .where(T.c.project_id == bp("project"), T.c.annotator_id == bp("user"))
    .order_by(T.c.id.desc())
    .offset(CONTROL_REUSE_AFTER)
    .limit(1)
)
# Random draws without sorting: a random key between the smallest and the largest id of the
# candidates, then the first candidate at or after it (wrapping round to the smallest), walked
# in index order (the control clips' partial index, the annotator's tasks by id).
_is_control = or_(C.c.is_gold == true(), C.c.silver == true())  # as ix_clips_controls' WHERE reads
CONTROL_SPAN = Prepared(
    select(
        select(func.min(C.c.id)).where(C.c.project_id == bp("project"), _is_control).scalar_subquery(),
        select(func.max(C.c.id)).where(C.c.project_id == bp("project"), _is_control).scalar_subquery(),
    )
)
_had = T.alias("had")


def _control_draw(fresh: bool) -> Prepared:
    """The first control clip from id `start` on that the annotator may get: `fresh`, one they
    never had; else one they had only as a control question at or before their task `cut`."""
    had = select(_had.c.id).where(_had.c.clip_id == C.c.id, _had.c.annotator_id == bp("user"))
    if not fresh:  # never a clip they answered as a task of the queue; a control again after the delay
        had = had.where(or_(_had.c.kind != "control", _had.c.id > bp("cut")))
    return Prepared(
        select(C.c.id)
        .where(C.c.project_id == bp("project"), _is_control, C.c.id >= bp("start"), ~had.exists())
        .order_by(C.c.id)
        .limit(1)
    )


CONTROL_FRESH, CONTROL_AGAIN = _control_draw(True), _control_draw(False)
RATE = Prepared(
    select(W.c.trust, W.c.evidence).where(W.c.project_id == bp("project"), W.c.user_id == bp("user"))
)
_rep = T.alias("rep")
MY_SPAN = Prepared(
    select(
        select(func.min(T.c.id))
        .where(T.c.project_id == bp("project"), T.c.annotator_id == bp("user"))
        .scalar_subquery(),
        select(func.max(T.c.id))
        .where(T.c.project_id == bp("project"), T.c.annotator_id == bp("user"))
        .scalar_subquery(),
    )
)
CONSISTENCY = Prepared(
    select(T.c.clip_id)
    .where(
        T.c.project_id == bp("project"),
        T.c.annotator_id == bp("user"),
        T.c.id >= bp("start"),
        T.c.kind == "regular",
        T.c.answered_at.is_not(None),
        T.c.answered_at < bp("before"),
        T.c.answer != CANT_TELL,
        ~select(_rep.c.id)
        .where(_rep.c.clip_id == T.c.clip_id, _rep.c.annotator_id == bp("user"), _rep.c.kind == "consistency")
        .exists(),
    )
    .order_by(T.c.id)
    .limit(1)
)
# Leases that ran out RECLAIM_AFTER ago unanswered (an unused prefetch, a closed page): deleted,
# so that they neither weigh on the live-lease queries nor keep the clip from the annotator.
# Never the newest task of all: SQLite gives a new row the largest id + 1, and a task id must
# never come back (a stale page's answer would land on another clip).
_newest = T.alias("newest")
RECLAIM = Prepared(
    T.delete().where(
        T.c.project_id == bp("project"),
        T.c.annotator_id == bp("user"),
        T.c.answered_at.is_(None),
        T.c.leased_until < bp("expired"),
        T.c.id < select(func.max(_newest.c.id)).scalar_subquery(),
    )
)
NEW_TASK = Prepared(
    T.insert()
    .values(
        project_id=bp("project"),
        clip_id=bp("clip"),
        annotator_id=bp("user"),
        kind=bp("v_kind"),
        created_at=bp("now"),
        leased_until=bp("until"),
        points=0,
    )
    .returning(T.c.id)
)
EVENT = Prepared(
    E.insert().values(
        project_id=bp("project"),
        user_id=bp("user"),
        kind=bp("v_kind"),
        data=bp("v_data"),
        created_at=bp("now"),
    )
)

TASK = Prepared(
    select(T.c.project_id, T.c.clip_id, T.c.annotator_id, T.c.kind, T.c.answered_at, T.c.leased_until).where(
        T.c.id == bp("task")
    )
)
TASK_PG = Prepared(TASK.stmt.with_for_update())
STORE = Prepared(
    T.update()
    .where(T.c.id == bp("task"), T.c.answered_at.is_(None))
    .values(answer=bp("v_answer"), answered_at=bp("now"), points=bp("v_points"), passed=bp("v_passed"))
)
TRUST = Prepared(
    select(
        W.c.trust, W.c.n_checked, W.c.n_right, W.c.n_answers, W.c.points, W.c.evidence, W.c.n_cant_tell
    ).where(W.c.project_id == bp("project"), W.c.user_id == bp("user"))
)
# an annotator's trust row as the answer path writes it (the same parameters insert or update it)
_TRUST_VALUES = {
    "trust": bp("v_trust"),
    "n_checked": bp("v_checked"),
    "n_right": bp("v_right"),
    "n_answers": bp("v_answers"),
    "points": bp("v_points"),
    "evidence": bp("v_evidence"),
    "n_cant_tell": bp("v_cant"),
}
TRUST_NEW = Prepared(W.insert().values(project_id=bp("project"), user_id=bp("user"), **_TRUST_VALUES))
TRUST_SET = Prepared(
    W.update().where(W.c.project_id == bp("project"), W.c.user_id == bp("user")).values(**_TRUST_VALUES)
)
# what a control answer is checked against: the gold label, or a silver clip's (corrected) label
TRUTH = Prepared(
    select(func.coalesce(C.c.gold_label, C.c.expert_label, C.c.label)).where(C.c.id == bp("clip"))
)
ANSWERED = Prepared(
    select(
        T.c.project_id,
        T.c.clip_id,
        T.c.annotator_id,
        T.c.kind,
        T.c.answer,
        T.c.answered_at,
        T.c.leased_until,
        T.c.points,
        T.c.passed,
    ).where(T.c.id == bp("task"))
)
ANSWERED_PG = Prepared(ANSWERED.stmt.with_for_update())
# A later answer of the same annotator in the project, or of anyone on the same clip (regular).
LATER_MINE = Prepared(
    select(T.c.id)
    .where(
        T.c.project_id == bp("project"),
        T.c.annotator_id == bp("user"),
        T.c.answered_at >= bp("at"),
        T.c.id != bp("task"),
    )
    .limit(1)
)
LATER_ON_CLIP = Prepared(
    select(T.c.id)
    .where(
        T.c.clip_id == bp("clip"),
        T.c.kind == "regular",
        T.c.answered_at >= bp("at"),
        T.c.id != bp("task"),
    )
    .limit(1)
)
UNSTORE = Prepared(
    T.update()
    .where(T.c.id == bp("task"), T.c.answered_at.is_not(None))
    .values(answer=None, answered_at=None, points=0, passed=None, leased_until=bp("until"))
)
UNCOUNT = Prepared(
    P.update()
    .where(P.c.id == bp("project"))
    .values(answers_used=P.c.answers_used - 1, cant_tell_count=P.c.cant_tell_count - bp("v_ct"))
)
FIRST = Prepared(
    select(T.c.answer).where(
        T.c.clip_id == bp("clip"),
        T.c.annotator_id == bp("user"),
        T.c.kind == "regular",
        T.c.answered_at.is_not(None),
    )
)
COUNT = Prepared(
    P.update()
    .where(P.c.id == bp("project"))
    .values(answers_used=P.c.answers_used + 1, cant_tell_count=P.c.cant_tell_count + bp("v_ct"))
)
LABELLED = Prepared(P.update().where(P.c.id == bp("project")).values(labels_count=P.c.labels_count + 1))
CLIP_STATUS = Prepared(select(C.c.status).where(C.c.id == bp("clip")))
SILVER = Prepared(C.update().where(C.c.id == bp("clip")).values(silver=True))
CLIP_STATUS_PG = Prepared(CLIP_STATUS.stmt.with_for_update())
# Each answer with its annotator's trust, confusion matrix, fitted skill and whether spammer
# detection flagged them (`flag_auto`: their answers count at chance level, engine/learning/spammers.py).
ANSWERS = Prepared(
    select(
        T.c.answer,
        func.coalesce(W.c.trust, PRIOR_TRUST),
        W.c.confusion,
        W.c.skill,
        func.coalesce(M.c.flag_auto, false()),
        func.coalesce(W.c.evidence, 0.0),
        T.c.annotator_id,
        W.c.noise,
    )
    .select_from(
        T.outerjoin(W, and_(W.c.project_id == T.c.project_id, W.c.user_id == T.c.annotator_id)).outerjoin(
            M, and_(M.c.project_id == T.c.project_id, M.c.user_id == T.c.annotator_id)
        )
    )
    .where(T.c.clip_id == bp("clip"), T.c.kind == "regular", T.c.answered_at.is_not(None))
    .order_by(T.c.answered_at, T.c.id),
    shared_json=True,  # the confusion matrices are only read
)
# The project's newest regular answers (clip, answer, annotator's trust), at most `n`: what the
# class prior before the first Dawid-Skene fit is estimated from (`crowd.worker_prior.class_prior`);
# a seek on ix_tasks_project_answered, bounded by `n` however large the project.
RECENT_ANSWERS = Prepared(
    select(T.c.clip_id, T.c.answer, func.coalesce(W.c.trust, PRIOR_TRUST))
    .select_from(T.outerjoin(W, and_(W.c.project_id == T.c.project_id, W.c.user_id == T.c.annotator_id)))
    .where(T.c.project_id == bp("project"), T.c.answered_at.is_not(None), T.c.kind == "regular")
    .order_by(T.c.answered_at.desc())
    .limit(bp("n"))
)
# Ratings: the control answers (and their gold) of the annotators who answered a clip, for
# their noise sd (`crowd.aggregation.continuous.rating_noise`).
CONTROL_ERRORS = Prepared(
    select(T.c.annotator_id, T.c.answer, func.coalesce(C.c.gold_label, C.c.expert_label, C.c.label))
    .select_from(T.join(C, C.c.id == T.c.clip_id))
    .where(
        T.c.project_id == bp("project"),
        T.c.kind == "control",
        T.c.answered_at.is_not(None),
        T.c.answer != CANT_TELL,
        T.c.annotator_id.in_(
            select(T.c.annotator_id).where(
                T.c.clip_id == bp("clip"), T.c.kind == "regular", T.c.answered_at.is_not(None)
            )
        ),
    )
)
CLIP_SET = Prepared(
    C.update()
    .where(C.c.id == bp("clip"))
    .values(
        n_answers=bp("v_n"),
        label=bp("v_label"),
        confidence=bp("v_confidence"),
        soft=bp("v_soft"),
        status=bp("v_status"),
        updated_at=bp("now"),
    )
)

# An answer whose clip is aggregated later (engine/live/settle.py): the clip's answer count goes
# up at once (REGULAR hands a clip out by it), its aggregate waits in pending_aggregates.
BUMP = Prepared(C.update().where(C.c.id == bp("clip")).values(n_answers=C.c.n_answers + 1))
_pending = {"clip_id": bp("clip"), "project_id": bp("project"), "user_id": bp("user"), "since": bp("now")}
PENDING_ADD = Prepared(sqlite_insert(PA).values(_pending).on_conflict_do_nothing(), "sqlite")
PENDING_ADD_PG = Prepared(pg_insert(PA).values(_pending).on_conflict_do_nothing(), "postgresql")
PENDING_TAKE = Prepared(select(PA.c.clip_id).limit(bp("n")))
PENDING_ONE = Prepared(select(PA.c.user_id).where(PA.c.clip_id == bp("clip")))
PENDING_DROP = Prepared(PA.delete().where(PA.c.clip_id == bp("clip")))
# What settling a pending clip outside the write transaction checks again inside it: the clip's
# answer count and status, and its pending row's start (an undo drops the row, so an undo and a
# new answer leave a new one). PostgreSQL locks both rows: two workers never settle a clip twice.
PENDING_MARK = Prepared(
    select(C.c.n_answers, C.c.status, PA.c.since, PA.c.user_id, PA.c.project_id)
    .select_from(PA.join(C, C.c.id == PA.c.clip_id))
    .where(PA.c.clip_id == bp("clip"))
)
PENDING_MARK_PG = Prepared(PENDING_MARK.stmt.with_for_update())


MEDIA = Prepared(
    select(C.c.path, C.c.sha256, T.c.annotator_id, T.c.project_id, P.c.owner_id)
    .select_from(T.join(C, C.c.id == T.c.clip_id).join(P, P.c.id == T.c.project_id))
    .where(T.c.id == bp("task"))
)


def answer_days(session: Session, user_id: int, offset_minutes: int) -> dict[date, int]:
    """The annotator's answers per calendar day at `offset_minutes` from UTC, over every project:
    counted by the database from the index of their tasks alone (ix_tasks_annotator_project)."""
    if session.get_bind().dialect.name == "sqlite":
        day: Any = func.date(Task.answered_at, f"{int(offset_minutes):+d} minutes")
    else:
        day = func.date(Task.answered_at + timedelta(minutes=int(offset_minutes)))
    rows = session.execute(
        select(day, func.count())
        .where(Task.annotator_id == user_id, Task.answered_at.is_not(None))
        .group_by(day)
    )
    return {(d if isinstance(d, date) else date.fromisoformat(str(d))): int(n) for d, n in rows}
