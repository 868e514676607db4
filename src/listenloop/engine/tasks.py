"""The live loop's request path (000_ Table 1, steps 4-5): hand out the next task, take an answer.

`next_task` gives an annotator the best-ranked queued clip they have not answered, leased for
a few minutes, and mixes in control questions (gold clips with a known answer, and "silver"
clips the crowd finished with trusted agreement; a control clip comes back to the same
annotator after a delay) and consistency questions (a repeat of one of their earlier clips),
at rates that rise while the annotator's trust is uncertain or low (`crowd.checks`). All three
look the same to the annotator: the same reply, the same points for the same answer
(`gamification.points_for`), and no clip identity (their audio is addressed by the task).
`submit_answer` stores an answer once (a retry or a late answer is a ConflictError and stores
nothing), updates the annotator's trust from control and consistency answers
(`crowd.trust`), re-aggregates the one clip (regular answers only: a check answer never
moves a clip's label) and asks the redundancy policy whether it is done; a clip finished
with trusted agreement becomes a silver control.
`undo_answer` takes an annotator's last answer back while nothing depends on it yet (the rule is
in its docstring), and the task is theirs to answer again.

Both run inside the caller's write transaction (`Database.transaction()`: on SQLite it holds the
write lock from its start, so it never needs a lock upgrade) and use Core statements built
once at import with bind parameters and run on the driver's cursor (`store/prepared.py`): at
hundreds of requests a second, building statements, loading ORM objects or SQLAlchemy's
per-execute machinery would cost more than the queries themselves.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, false, func, or_, select, true
from sqlalchemy import bindparam as bp
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from listenloop.crowd.checks import (
    CONTROL_REUSE_AFTER,
    MAX_CHECK_SHARE,
    SILVER_TASKS,
    cant_tell_fails,
    control_rate_for,
    is_silver,
)
from listenloop.crowd.redundancy import CANT_TELL
from listenloop.crowd.trust import PRIOR_TRUST, check_weight, revert_trust, update_trust
from listenloop.engine.accounts import Principal
from listenloop.engine.aggregate import aggregate_clip, rating_noise_of
from listenloop.engine.errors import ConflictError, ForbiddenError, NotFoundError
from listenloop.engine.gamification import level_of, points_for
from listenloop.engine.labels import normalize_label
from listenloop.engine.projects import blocked_reason, refusal
from listenloop.engine.views import ProjectView, load_view
from listenloop.settings import Settings
from listenloop.store.database import connection_of
from listenloop.store.models import Clip, Event, Project, ProjectMember, Task, WorkerTrust, utcnow
from listenloop.store.prepared import Prepared

LEASE = Settings.from_env().task_lease  # LISTENLOOP_TASK_LEASE_SECONDS (5 minutes), read at import
CONSISTENCY_DELAY = timedelta(seconds=60)  # a repeat comes at least this long after the first answer
# An unanswered lease is deleted this long after it ran out (until then a late answer gets its
# 409 "expired"); the annotator may then be given that clip again.
RECLAIM_AFTER = timedelta(hours=1)

P, C, T = Project.__table__, Clip.__table__, Task.__table__
W, M, E = WorkerTrust.__table__, ProjectMember.__table__, Event.__table__


@dataclass(frozen=True)
class Assignment:
    """A leased task (no kind, no known answer). `clip_id` is for the engine and its tests:
    the server never shows it to the annotator (audio and spectrogram are addressed by task)."""

    task_id: int
    clip_id: int
    leased_until: datetime


def _mine(user: Any) -> Any:
    """EXISTS: the annotator already has a task (of any kind) on the outer query's clip."""
    mine = T.alias("mine")
    return select(mine.c.id).where(mine.c.clip_id == C.c.id, mine.c.annotator_id == user).exists()


_MEMBER = Prepared(select(M.c.active).where(M.c.project_id == bp("project"), M.c.user_id == bp("user")))
_JOIN = Prepared(
    M.insert().values(project_id=bp("project"), user_id=bp("user"), active=True, added_at=bp("now"))
)
# The annotator's unanswered tasks of the project, live or expired (reclaiming keeps them few):
# the live ones are served again, long-expired ones are a sign to reclaim. Unsorted: an ORDER BY
# id would walk all their tasks of the project in id order instead of seeking ix_tasks_open.
_UNANSWERED = Prepared(
    select(T.c.id, T.c.clip_id, T.c.leased_until).where(
        T.c.project_id == bp("project"), T.c.annotator_id == bp("user"), T.c.answered_at.is_(None)
    )
)
_LIVE = Prepared(
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
_REGULAR = Prepared(
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
_REGULAR_PG = Prepared(_REGULAR.stmt.with_for_update(skip_locked=True, of=C))
# The id of the annotator's task CONTROL_REUSE_AFTER places before their newest: a control clip
# they last had at or before it may come back (they had that many other tasks since).
_CUT = Prepared(
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
_CONTROL_SPAN = Prepared(
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


_CONTROL_FRESH, _CONTROL_AGAIN = _control_draw(True), _control_draw(False)
_RATE = Prepared(
    select(W.c.trust, W.c.evidence).where(W.c.project_id == bp("project"), W.c.user_id == bp("user"))
)
_rep = T.alias("rep")
_MY_SPAN = Prepared(
    select(
        select(func.min(T.c.id))
        .where(T.c.project_id == bp("project"), T.c.annotator_id == bp("user"))
        .scalar_subquery(),
        select(func.max(T.c.id))
        .where(T.c.project_id == bp("project"), T.c.annotator_id == bp("user"))
        .scalar_subquery(),
    )
)
_CONSISTENCY = Prepared(
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
_RECLAIM = Prepared(
    T.delete().where(
        T.c.project_id == bp("project"),
        T.c.annotator_id == bp("user"),
        T.c.answered_at.is_(None),
        T.c.leased_until < bp("expired"),
        T.c.id < select(func.max(_newest.c.id)).scalar_subquery(),
    )
)
_NEW_TASK = Prepared(
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
_EVENT = Prepared(
    E.insert().values(
        project_id=bp("project"),
        user_id=bp("user"),
        kind=bp("v_kind"),
        data=bp("v_data"),
        created_at=bp("now"),
    )
)

_TASK = Prepared(
    select(T.c.project_id, T.c.clip_id, T.c.annotator_id, T.c.kind, T.c.answered_at, T.c.leased_until).where(
        T.c.id == bp("task")
    )
)
_TASK_PG = Prepared(_TASK.stmt.with_for_update())
_STORE = Prepared(
    T.update()
    .where(T.c.id == bp("task"), T.c.answered_at.is_(None))
    .values(answer=bp("v_answer"), answered_at=bp("now"), points=bp("v_points"), passed=bp("v_passed"))
)
_TRUST = Prepared(
    select(
        W.c.trust, W.c.n_checked, W.c.n_right, W.c.n_answers, W.c.points, W.c.evidence, W.c.n_cant_tell
    ).where(W.c.project_id == bp("project"), W.c.user_id == bp("user"))
)
_TRUST_NEW = Prepared(
    W.insert().values(
        project_id=bp("project"),
        user_id=bp("user"),
        trust=bp("v_trust"),
        n_checked=bp("v_checked"),
        n_right=bp("v_right"),
        n_answers=bp("v_answers"),
        points=bp("v_points"),
        evidence=bp("v_evidence"),
        n_cant_tell=bp("v_cant"),
    )
)
_TRUST_SET = Prepared(
    W.update()
    .where(W.c.project_id == bp("project"), W.c.user_id == bp("user"))
    .values(
        trust=bp("v_trust"),
        n_checked=bp("v_checked"),
        n_right=bp("v_right"),
        n_answers=bp("v_answers"),
        points=bp("v_points"),
        evidence=bp("v_evidence"),
        n_cant_tell=bp("v_cant"),
    )
)
# what a control answer is checked against: the gold label, or a silver clip's (corrected) label
_TRUTH = Prepared(
    select(func.coalesce(C.c.gold_label, C.c.expert_label, C.c.label)).where(C.c.id == bp("clip"))
)
_ANSWERED = Prepared(
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
_ANSWERED_PG = Prepared(_ANSWERED.stmt.with_for_update())
# A later answer of the same annotator in the project, or of anyone on the same clip (regular).
_LATER_MINE = Prepared(
    select(T.c.id)
    .where(
        T.c.project_id == bp("project"),
        T.c.annotator_id == bp("user"),
        T.c.answered_at >= bp("at"),
        T.c.id != bp("task"),
    )
    .limit(1)
)
_LATER_ON_CLIP = Prepared(
    select(T.c.id)
    .where(
        T.c.clip_id == bp("clip"),
        T.c.kind == "regular",
        T.c.answered_at >= bp("at"),
        T.c.id != bp("task"),
    )
    .limit(1)
)
_UNSTORE = Prepared(
    T.update()
    .where(T.c.id == bp("task"), T.c.answered_at.is_not(None))
    .values(answer=None, answered_at=None, points=0, passed=None, leased_until=bp("until"))
)
_UNCOUNT = Prepared(
    P.update()
    .where(P.c.id == bp("project"))
    .values(answers_used=P.c.answers_used - 1, cant_tell_count=P.c.cant_tell_count - bp("v_ct"))
)
_FIRST = Prepared(
    select(T.c.answer).where(
        T.c.clip_id == bp("clip"),
        T.c.annotator_id == bp("user"),
        T.c.kind == "regular",
        T.c.answered_at.is_not(None),
    )
)
_COUNT = Prepared(
    P.update()
    .where(P.c.id == bp("project"))
    .values(answers_used=P.c.answers_used + 1, cant_tell_count=P.c.cant_tell_count + bp("v_ct"))
)
_LABELLED = Prepared(P.update().where(P.c.id == bp("project")).values(labels_count=P.c.labels_count + 1))
_CLIP_STATUS = Prepared(select(C.c.status).where(C.c.id == bp("clip")))
_SILVER = Prepared(C.update().where(C.c.id == bp("clip")).values(silver=True))
_CLIP_STATUS_PG = Prepared(_CLIP_STATUS.stmt.with_for_update())
# Each answer with its annotator's trust, confusion matrix, fitted skill and whether spammer
# detection flagged them (`flag_auto`: their answers count at chance level, engine/spammers.py).
_ANSWERS = Prepared(
    select(
        T.c.answer,
        func.coalesce(W.c.trust, PRIOR_TRUST),
        W.c.confusion,
        W.c.skill,
        func.coalesce(M.c.flag_auto, false()),
        func.coalesce(W.c.evidence, 0.0),
        T.c.annotator_id,
    )
    .select_from(
        T.outerjoin(W, and_(W.c.project_id == T.c.project_id, W.c.user_id == T.c.annotator_id)).outerjoin(
            M, and_(M.c.project_id == T.c.project_id, M.c.user_id == T.c.annotator_id)
        )
    )
    .where(T.c.clip_id == bp("clip"), T.c.kind == "regular", T.c.answered_at.is_not(None))
    .order_by(T.c.answered_at, T.c.id)
)
# Ratings: the control answers (and their gold) of the annotators who answered a clip, for
# their noise sd (`crowd.aggregation.continuous.rating_noise`).
_CONTROL_ERRORS = Prepared(
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
_CLIP_SET = Prepared(
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


_MEDIA = Prepared(
    select(C.c.path, C.c.sha256, T.c.annotator_id, T.c.project_id, P.c.owner_id)
    .select_from(T.join(C, C.c.id == T.c.clip_id).join(P, P.c.id == T.c.project_id))
    .where(T.c.id == bp("task"))
)


def task_media(session: Session | Connection, task_id: int, who: Principal) -> tuple[str, str]:
    """(path, sha256) of the audio of task `task_id`, for its annotator and the project's owner
    (or an admin): annotators hear a clip through the task that serves it, never by a clip id.

    NotFoundError: no such task; ForbiddenError: another annotator's task, or its annotator
    was blocked from the project.
    """
    conn = connection_of(session)
    row = _MEDIA.first(conn, {"task": task_id})
    if row is None:
        raise NotFoundError(f"task {task_id} does not exist")
    if who.is_admin or row.owner_id == who.id:
        return row.path, row.sha256
    if row.annotator_id != who.id:
        raise ForbiddenError(f"task {task_id} belongs to another annotator")
    active = _MEMBER.scalar(conn, {"project": row.project_id, "user": who.id})
    if active is not None and not active:
        raise ForbiddenError(blocked_reason(row.project_id))
    return row.path, row.sha256


def _pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _event(
    conn: Connection, project: int, user: int | None, kind: str, data: dict[str, Any], now: datetime
) -> None:
    _EVENT.run(conn, {"project": project, "user": user, "v_kind": kind, "v_data": data, "now": now})


def _ensure_member(conn: Connection, project: ProjectView, who: Principal, now: datetime) -> None:
    """Make `who` a member on their first task (open projects); ForbiddenError where they may not."""
    if who.is_admin or project.owner_id == who.id:
        return
    active = _MEMBER.scalar(conn, {"project": project.id, "user": who.id})
    reason = refusal(project, who, active)
    if reason is not None:
        raise ForbiddenError(reason)
    if active is not None:
        return
    _JOIN.run(conn, {"project": project.id, "user": who.id, "now": now})
    _event(conn, project.id, who.id, "member_joined", {}, now)


def next_task(
    session: Session | Connection,
    project: ProjectView | int,
    who: Principal,
    now: datetime | None = None,
    rng: random.Random | None = None,
    ahead: bool = False,
) -> Assignment | None:
    """Lease the annotator's next task, or None when there is nothing to do (or the budget is spent).

    A repeated call while a lease is open returns the same task. Joins the annotator to an
    open project on their first task (ForbiddenError, with the reason, for an invite-only
    project they were not invited to, or one they are blocked from).

    `ahead`: the task after the open one, so that a page can load the next clip while the
    current one plays: a second lease (at most two are open), or the second open one again.
    """
    now = now or utcnow()
    rng = rng or random.Random()
    conn = connection_of(session)
    view = load_view(conn, project) if isinstance(project, int) else project
    _ensure_member(conn, view, who, now)
    keys = {"project": view.id, "user": who.id, "now": now}
    unanswered = _UNANSWERED.all(conn, keys)
    open_tasks = sorted((t for t in unanswered if t.leased_until > now), key=lambda t: t.id)[:2]
    if open_tasks and (not ahead or len(open_tasks) > 1):
        task = open_tasks[1] if ahead else open_tasks[0]
        return Assignment(task.id, task.clip_id, task.leased_until)
    expired = now - RECLAIM_AFTER
    if any(t.leased_until < expired for t in unanswered):
        _RECLAIM.run(conn, {**keys, "expired": expired})  # their long-expired leases
    if view.budget is not None and view.answers_used + (_LIVE.scalar(conn, keys) or 0) >= view.budget:
        return None
    regular = _REGULAR_PG if _pg(conn) else _REGULAR
    clip_id = regular.scalar(conn, {**keys, "rmin": view.redundancy_min, "rmax": view.redundancy_max})
    if clip_id is None:
        return None  # check questions only ever accompany real work
    kind = "regular"
    draw = rng.random()
    control_rate = view.control_rate
    if draw < max(view.control_rate + view.consistency_rate, MAX_CHECK_SHARE):  # the rate may matter
        row = _RATE.first(conn, keys)
        trust, evidence = (float(row[0]), float(row[1])) if row is not None else (PRIOR_TRUST, 0.0)
        control_rate = control_rate_for(
            view.control_rate, view.consistency_rate, trust, evidence, view.trust_threshold
        )
    if draw < control_rate:
        span = _CONTROL_SPAN.first(conn, keys)
        other = _draw(conn, _CONTROL_FRESH, span, keys, rng)  # a clip they never had first
        if other is None:
            cut = _CUT.scalar(conn, keys) or 0
            other = _draw(conn, _CONTROL_AGAIN, span, {**keys, "cut": cut}, rng)
        if other is not None:
            kind, clip_id = "control", other
    elif draw < control_rate + view.consistency_rate:
        span = _MY_SPAN.first(conn, keys)
        other = _draw(conn, _CONSISTENCY, span, {**keys, "before": now - CONSISTENCY_DELAY}, rng)
        if other is not None:
            kind, clip_id = "consistency", other
    until = now + LEASE
    # The task row is the lease's record (no event: at hundreds of pairs a second, the events
    # table would grow by a row per lease for nothing that reads it).
    task_id = int(_NEW_TASK.scalar(conn, {**keys, "clip": clip_id, "v_kind": kind, "until": until}))
    return Assignment(task_id, clip_id, until)


def _draw(conn: Connection, stmt: Prepared, span: Any, keys: dict[str, Any], rng: random.Random) -> Any:
    """A random candidate of `stmt` without sorting the candidates: from a random id in `span`
    (the smallest and largest candidate id), the first one at or after it, else the first one."""
    low, high = span if span is not None else (None, None)
    if low is None or high is None:
        return None
    start = rng.randint(int(low), int(high))
    found = stmt.scalar(conn, {**keys, "start": start})
    if found is None and start > low:
        found = stmt.scalar(conn, {**keys, "start": low})
    return found


def _agrees(project: ProjectView, a: str, b: str | None) -> bool:
    """Whether two answers agree: the same class or tag set; within 10 % of the range for ratings."""
    if b is None:
        return False
    if project.task_type == "continuous":
        width = float((project.range_max or 1.0) - (project.range_min or 0.0))
        return abs(float(a) - float(b)) <= 0.1 * width
    return a == b


def _check(
    conn: Connection,
    project: ProjectView,
    kind: str,
    clip_id: int,
    user: int,
    answer: str,
    cant_tell: tuple[int, int],
) -> bool | None:
    """Whether a control or consistency answer passed its check (None: nothing to check).

    `cant_tell`: the annotator's can't-tell answers and answers before this one; a control
    answered "can't tell" fails when their rate is far above the crowd's (`cant_tell_fails`).
    """
    if kind not in ("control", "consistency"):
        return None
    if answer == CANT_TELL:
        if kind != "control":
            return None
        own, answers = cant_tell
        crowd = max(project.cant_tell_count - own, 0), max(project.answers_used - answers, 0)
        return False if cant_tell_fails(own, answers, *crowd) else None
    if kind == "control":
        return _agrees(project, answer, _TRUTH.scalar(conn, {"clip": clip_id}))
    first = _FIRST.scalar(conn, {"clip": clip_id, "user": user})
    if first is None or first == CANT_TELL:
        return None
    return _agrees(project, answer, first)


def _reaggregate(
    conn: Connection, project: ProjectView, clip_id: int, user: int | None, now: datetime
) -> None:
    """Re-aggregate one clip with the current skills and let the redundancy policy decide."""
    status = (_CLIP_STATUS_PG if _pg(conn) else _CLIP_STATUS).scalar(conn, {"clip": clip_id})
    rows = _ANSWERS.all(conn, {"clip": clip_id})
    trusts = [float(r[1]) for r in rows]
    noise = None
    if project.task_type == "continuous":
        sd = rating_noise_of(project, _CONTROL_ERRORS.all(conn, {"project": project.id, "clip": clip_id}))
        noise = [sd.get(int(r[6]), sd[None]) for r in rows]
    verdict = aggregate_clip(
        project,
        [r[0] for r in rows],
        trusts,
        [r[2] for r in rows],
        [r[3] for r in rows],
        chance=[bool(r[4]) for r in rows],
        noise=noise,
    )
    if status == "queued" and verdict.done:
        status = "low_agreement" if verdict.low_agreement else "done"
        silver = (
            status == "done"
            and project.task_type in SILVER_TASKS
            and is_silver(
                verdict.label, verdict.confidence, [r[0] for r in rows], trusts, [float(r[5]) for r in rows]
            )
        )
        if silver:  # a control question from now on, for those who never answered it
            _SILVER.run(conn, {"clip": clip_id})
        data = {
            "clip": clip_id,
            "label": verdict.label,
            "confidence": verdict.confidence,
            "answers": len(rows),
        }
        _event(conn, project.id, user, "clip_" + status, data, now)
        if status == "done" and verdict.label is not None and verdict.label != CANT_TELL:
            _LABELLED.run(conn, {"project": project.id})
    _CLIP_SET.run(
        conn,
        {
            "clip": clip_id,
            "v_n": len(rows),
            "v_label": verdict.label,
            "v_confidence": verdict.confidence,
            "v_soft": verdict.soft,
            "v_status": status,
            "now": now,
        },
    )


def reaggregate_clips(
    session: Session | Connection, project_id: int, clip_ids: list[int], now: datetime | None = None
) -> None:
    """Re-aggregate these clips of the project with the current skills and flags (e.g. after spammer
    detection flagged one of their annotators): a queued clip may now be done."""
    now = now or utcnow()
    conn = connection_of(session)
    view = load_view(conn, project_id)
    for clip_id in clip_ids:
        _reaggregate(conn, view, clip_id, None, now)


def submit_answer(
    session: Session | Connection, task_id: int, who: Principal, value: Any, now: datetime | None = None
) -> dict[str, Any]:
    """Store `value` as the answer to task `task_id`: `{task_id, clip_id, points, total_points, level}`.

    NotFoundError: no such task; ForbiddenError: another annotator's task, or the annotator was
    blocked (which ended the lease); ConflictError:
    answered already (a retry) or the lease expired; InvalidError: not an answer this project
    takes. Nothing is stored on any of these.
    """
    now = now or utcnow()
    conn = connection_of(session)
    task = (_TASK_PG if _pg(conn) else _TASK).first(conn, {"task": task_id})
    if task is None:
        raise NotFoundError(f"task {task_id} does not exist")
    if task.annotator_id != who.id:
        raise ForbiddenError(f"task {task_id} belongs to another annotator")
    if task.answered_at is not None:
        raise ConflictError(f"task {task_id} is already answered")
    if task.leased_until < now:
        active = _MEMBER.scalar(conn, {"project": task.project_id, "user": who.id})
        if active is not None and not active:
            raise ForbiddenError(blocked_reason(task.project_id))  # blocking ended the lease
        raise ConflictError(f"the lease of task {task_id} expired; ask for the next task")
    project = load_view(conn, task.project_id)
    answer = normalize_label(project, value, allow_cant_tell=True)
    keys = {"project": project.id, "user": who.id, "now": now}
    row = _TRUST.first(conn, keys)
    fresh = (PRIOR_TRUST, 0, 0, 0, 0, 0.0, 0)
    trust, checked, right, answers, points_so_far, evidence, cant = row if row is not None else fresh
    # The same points for the same answer on every kind of task, whatever the annotator's trust:
    # the points of a reply (and of a reply after an undo) must not tell whether it was a check.
    points = points_for(answer)
    passed = _check(conn, project, task.kind, task.clip_id, who.id, answer, (int(cant), int(answers)))
    if passed is not None:
        weight = check_weight(task.kind, passed)
        trust = update_trust(trust, passed, float(evidence), weight=weight)
        evidence = float(evidence) + weight
        checked += 1
        right += int(passed)
    values = {"task": task_id, "v_answer": answer, "now": now, "v_points": points, "v_passed": passed}
    if _STORE.run(conn, values) != 1:
        raise ConflictError(f"task {task_id} is already answered")
    total = points_so_far + points
    is_cant = int(answer == CANT_TELL)
    worker = (trust, checked, right, answers + 1, total, evidence, int(cant) + is_cant)
    _settle(
        conn,
        project,
        task_id,
        task,
        who.id,
        {**keys, "v_ct": is_cant},
        row is not None,
        worker,
        _COUNT,
        "answer",
        passed,
        now,
    )
    return {
        "task_id": task_id,
        "points": points,
        "total_points": total,
        "level": level_of(total),
    }


def _settle(
    conn: Connection,
    project: ProjectView,
    task_id: int,
    task: Any,
    user_id: int,
    keys: dict[str, Any],
    known: bool,
    worker: tuple[float, int, int, int, int, float, int],
    count: Any,
    kind: str,
    passed: bool | None,
    now: datetime,
) -> None:
    """What an answer and its undo both write after the task itself: the annotator's trust,
    checks, answers, points, check evidence and can't-tell answers (`worker`, in that order;
    `known`: their row exists), the project's answer counts (`count`), the event `kind`, and a
    regular clip's aggregate. Only check answers are logged as events."""
    trust, checked, right, answers, points, evidence, cant = worker
    values = {
        "v_trust": trust,
        "v_checked": checked,
        "v_right": right,
        "v_answers": answers,
        "v_points": points,
        "v_evidence": evidence,
        "v_cant": cant,
    }
    (_TRUST_SET if known else _TRUST_NEW).run(conn, {**keys, **values})
    count.run(conn, keys)
    if task.kind in ("control", "consistency"):  # what the dashboard's check columns count; the
        # task row records every answer (a regular answer's event would only grow the log)
        data = {"task": task_id, "clip": task.clip_id, "kind": task.kind, "check": passed}
        _event(conn, project.id, user_id, kind, data, now)
    if task.kind == "regular":
        _reaggregate(conn, project, task.clip_id, user_id, now)


def undo_answer(
    session: Session | Connection, task_id: int, who: Principal, now: datetime | None = None
) -> dict[str, Any]:
    """Take back the annotator's answer to task `task_id`; the task is theirs to answer again.

    Returns `{task_id, project_id, points (taken back), total_points, level}`. The rule: an answer can be
    undone by the annotator who gave it while

    1. its task's lease has not run out (the task is still theirs), and
    2. it is their last answer in the project (no later answer rests on the trust, points and
       consistency history it left), and
    3. for a clip of the queue (a regular task): the clip is still open (its label was not
       decided, by this answer or by anyone) and no one answered it after them.

    Control and consistency answers follow the same rule, so that an undo never tells a check
    from a regular task: their trust update is taken back exactly (`revert_trust`).

    Undoing removes the answer, its points and its count (the project's answers used, the
    annotator's answers), re-aggregates the clip, logs `answer_undone` and renews the task's
    lease, so `next` serves the same task again. NotFoundError: no such task; ForbiddenError:
    another annotator's task, or the annotator was blocked (they could not answer it again);
    ConflictError (with the reason): nothing to undo, or the rule does not allow it. Nothing
    changes on any of these.
    """
    now = now or utcnow()
    conn = connection_of(session)
    task = (_ANSWERED_PG if _pg(conn) else _ANSWERED).first(conn, {"task": task_id})
    if task is None:
        raise NotFoundError(f"task {task_id} does not exist")
    if task.annotator_id != who.id:
        raise ForbiddenError(f"task {task_id} belongs to another annotator")
    active = _MEMBER.scalar(conn, {"project": task.project_id, "user": who.id})
    if active is not None and not active:
        raise ForbiddenError(blocked_reason(task.project_id))  # they could not answer it again
    if task.answered_at is None:
        raise ConflictError(f"task {task_id} has no answer to undo")
    if task.leased_until < now:
        raise ConflictError(f"the lease of task {task_id} ran out: its answer stands")
    keys = {"project": task.project_id, "user": who.id, "task": task_id, "at": task.answered_at, "now": now}
    if _LATER_MINE.scalar(conn, keys) is not None:
        raise ConflictError("only your last answer can be undone: you answered another clip since")
    if task.kind == "regular":
        status = (_CLIP_STATUS_PG if _pg(conn) else _CLIP_STATUS).scalar(conn, {"clip": task.clip_id})
        if status != "queued":
            raise ConflictError("this clip's label is already decided: your answer stands")
        if _LATER_ON_CLIP.scalar(conn, {**keys, "clip": task.clip_id}) is not None:
            raise ConflictError("someone answered this clip after you: your answer stands")
    project = load_view(conn, task.project_id)
    row = _TRUST.first(conn, keys)
    fresh = (PRIOR_TRUST, 0, 0, 1, task.points, 0.0, 0)
    trust, checked, right, answers, total, evidence, cant = row if row is not None else fresh
    passed = task.passed  # what its check gave then (the crowd's can't-tell rate has moved since)
    if passed is not None and checked > 0:
        weight = check_weight(task.kind, passed)
        trust = revert_trust(trust, passed, float(evidence), weight=weight)
        evidence = max(float(evidence) - weight, 0.0)
        checked -= 1
        right -= int(passed)
    if _UNSTORE.run(conn, {"task": task_id, "until": now + LEASE}) != 1:
        raise ConflictError(f"task {task_id} has no answer to undo")
    total = max(int(total) - int(task.points), 0)
    is_cant = int(task.answer == CANT_TELL)
    worker = (trust, checked, right, max(int(answers) - 1, 0), total, evidence, max(int(cant) - is_cant, 0))
    _settle(
        conn,
        project,
        task_id,
        task,
        who.id,
        {**keys, "v_ct": is_cant},
        row is not None,
        worker,
        _UNCOUNT,
        "answer_undone",
        passed,
        now,
    )
    return {
        "task_id": task_id,
        "project_id": project.id,
        "points": int(task.points),
        "total_points": total,
        "level": level_of(total),
    }
