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

Both run inside the caller's write transaction (`Database.transaction()`, or `Database.direct()`
on the hot routes: on SQLite it holds the write lock from its start, so it never needs a lock
upgrade) and use the Core statements of
`store/tasks.py`, built once at import and run on the driver's cursor (`store/prepared.py`): at
hundreds of requests a second, building statements, loading ORM objects or SQLAlchemy's
per-execute machinery would cost more than the queries themselves.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from listenloop.crowd.checks import (
    MAX_CHECK_SHARE,
    SILVER_TASKS,
    cant_tell_fails,
    control_rate_for,
    is_silver,
)
from listenloop.crowd.redundancy import CANT_TELL
from listenloop.crowd.trust import PRIOR_TRUST, check_weight, revert_trust, update_trust
from listenloop.engine.accounts import Principal
from listenloop.engine.errors import ConflictError, ForbiddenError, NotFoundError
from listenloop.engine.gamification import level_of, points_for
from listenloop.engine.labels import normalize_label
from listenloop.engine.lifecycle import state_refusal
from listenloop.engine.live.aggregate import (
    PRIOR_ANSWERS,
    ClipVerdict,
    aggregate_clip,
    early_class_prior,
    rating_noise_of,
)
from listenloop.engine.live.views import ProjectView, load_view
from listenloop.engine.projects import blocked_reason, refusal
from listenloop.settings import Settings
from listenloop.store import tasks as q
from listenloop.store.database import AnyConnection, connection_of
from listenloop.store.models import utcnow
from listenloop.store.prepared import Prepared

LEASE = Settings.from_env().task_lease  # LISTENLOOP_TASK_LEASE_SECONDS (5 minutes), read at import
CONSISTENCY_DELAY = timedelta(seconds=60)  # a repeat comes at least this long after the first answer
# An unanswered lease is deleted this long after it ran out (until then a late answer gets its
# 409 "expired"); the annotator may then be given that clip again.
RECLAIM_AFTER = timedelta(hours=1)
# The draws of `next` (check questions, control clips): one generator per process, since seeding
# a new one from the system's entropy cost more than the draws themselves.
_RNG = random.Random()


@dataclass(frozen=True)
class Assignment:
    """A leased task (no kind, no known answer). `clip_id` is for the engine and its tests:
    the server never shows it to the annotator (audio and spectrogram are addressed by task)."""

    task_id: int
    clip_id: int
    leased_until: datetime


def task_media(session: AnyConnection, task_id: int, who: Principal) -> tuple[str, str]:
    """(path, sha256) of the audio of task `task_id`, for its annotator and the project's owner
    (or an admin): annotators hear a clip through the task that serves it, never by a clip id.

    NotFoundError: no such task; ForbiddenError: another annotator's task, or its annotator
    was blocked from the project.
    """
    conn = connection_of(session)
    row = q.MEDIA.first(conn, {"task": task_id})
    if row is None:
        raise NotFoundError(f"task {task_id} does not exist")
    if who.is_admin or row.owner_id == who.id:
        return row.path, row.sha256
    if row.annotator_id != who.id:
        raise ForbiddenError(f"task {task_id} belongs to another annotator")
    active = q.MEMBER.scalar(conn, {"project": row.project_id, "user": who.id})
    if active is not None and not active:
        raise ForbiddenError(blocked_reason(row.project_id))
    return row.path, row.sha256


def _pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _event(
    conn: Connection, project: int, user: int | None, kind: str, data: dict[str, Any], now: datetime
) -> None:
    q.EVENT.run(conn, {"project": project, "user": user, "v_kind": kind, "v_data": data, "now": now})


def _ensure_member(conn: Connection, project: ProjectView, who: Principal, now: datetime) -> None:
    """Make `who` a member on their first task (open projects); ForbiddenError where they may not."""
    if who.is_admin or project.owner_id == who.id:
        return
    active = q.MEMBER.scalar(conn, {"project": project.id, "user": who.id})
    reason = refusal(project, who, active)
    if reason is not None:
        raise ForbiddenError(reason)
    if active is not None:
        return
    q.JOIN.run(conn, {"project": project.id, "user": who.id, "now": now})
    _event(conn, project.id, who.id, "member_joined", {}, now)


def next_task(
    session: AnyConnection,
    project: ProjectView | int,
    who: Principal,
    now: datetime | None = None,
    rng: random.Random | None = None,
    ahead: bool = False,
) -> Assignment | None:
    """Lease the annotator's next task, or None when there is nothing to do (or the budget is spent).

    A repeated call while a lease is open returns the same task. Joins the annotator to an
    open project on their first task (ForbiddenError, with the reason, for an invite-only
    project they were not invited to, or one they are blocked from). ConflictError (409, with
    the reason) while the project is paused or archived.

    `ahead`: the task after the open one, so that a page can load the next clip while the
    current one plays: a second lease (at most two are open), or the second open one again.
    """
    now = now or utcnow()
    rng = rng or _RNG
    conn = connection_of(session)
    view = load_view(conn, project) if isinstance(project, int) else project
    _ensure_member(conn, view, who, now)
    paused = state_refusal(view.id, view.state)
    if paused is not None:
        raise ConflictError(paused)
    keys = {"project": view.id, "user": who.id, "now": now}
    unanswered = q.UNANSWERED.all(conn, keys)
    open_tasks = sorted((t for t in unanswered if t.leased_until > now), key=lambda t: t.id)[:2]
    if open_tasks and (not ahead or len(open_tasks) > 1):
        task = open_tasks[1] if ahead else open_tasks[0]
        return Assignment(task.id, task.clip_id, task.leased_until)
    expired = now - RECLAIM_AFTER
    if any(t.leased_until < expired for t in unanswered):
        q.RECLAIM.run(conn, {**keys, "expired": expired})  # their long-expired leases
    if view.budget is not None and view.answers_used + (q.LIVE.scalar(conn, keys) or 0) >= view.budget:
        return None
    regular = q.REGULAR_PG if _pg(conn) else q.REGULAR
    clip_id = regular.scalar(conn, {**keys, "rmin": view.redundancy_min, "rmax": view.redundancy_max})
    if clip_id is None:
        return None  # check questions only ever accompany real work
    kind = "regular"
    draw = rng.random()
    control_rate = view.control_rate
    if draw < max(view.control_rate + view.consistency_rate, MAX_CHECK_SHARE):  # the rate may matter
        row = q.RATE.first(conn, keys)
        trust, evidence = (float(row[0]), float(row[1])) if row is not None else (PRIOR_TRUST, 0.0)
        control_rate = control_rate_for(
            view.control_rate, view.consistency_rate, trust, evidence, view.trust_threshold
        )
    if draw < control_rate:
        span = q.CONTROL_SPAN.first(conn, keys)
        other = _draw(conn, q.CONTROL_FRESH, span, keys, rng)  # a clip they never had first
        if other is None:
            cut = q.CUT.scalar(conn, keys) or 0
            other = _draw(conn, q.CONTROL_AGAIN, span, {**keys, "cut": cut}, rng)
        if other is not None:
            kind, clip_id = "control", other
    elif draw < control_rate + view.consistency_rate:
        span = q.MY_SPAN.first(conn, keys)
        other = _draw(conn, q.CONSISTENCY, span, {**keys, "before": now - CONSISTENCY_DELAY}, rng)
        if other is not None:
            kind, clip_id = "consistency", other
    until = now + LEASE
    # The task row is the lease's record (no event: at hundreds of pairs a second, the events
    # table would grow by a row per lease for nothing that reads it).
    task_id = int(q.NEW_TASK.scalar(conn, {**keys, "clip": clip_id, "v_kind": kind, "until": until}))
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
        return _agrees(project, answer, q.TRUTH.scalar(conn, {"clip": clip_id}))
    first = q.FIRST.scalar(conn, {"clip": clip_id, "user": user})
    if first is None or first == CANT_TELL:
        return None
    return _agrees(project, answer, first)


# The class prior before the first fit, per project and process: (the project's answers_used
# when it was estimated, answers it was estimated from, prior). Its EM over up to PRIOR_ANSWERS
# answers cost about 1 ms at 1,000 answers, half a whole answered pair, so it is re-estimated
# only after EARLY_PRIOR_STEP more answers, or a quarter more once it rests on more (every 250
# at most: at every 50, at 700 answers a second it was 7 % of a server process's work).
# Re-estimated on every answer of a project's first hundred, it was a quarter of the server's
# work while a crowd's first answers arrive together (issue 17, the first second of a load).
_EARLY_PRIORS: dict[int, tuple[int, int, list[float] | None]] = {}
_EARLY_PRIORS_LOCK = threading.Lock()
EARLY_PRIOR_STEP = 8
EARLY_PRIOR_REFRESH = 0.25


def _early_prior(conn: Connection, project: ProjectView) -> list[float] | None:
    """`early_class_prior` of the project's newest answers, re-estimated as answers accumulate."""
    with _EARLY_PRIORS_LOCK:
        at, used, prior = _EARLY_PRIORS.get(project.id, (-1, 0, None))
    grown = project.answers_used - at
    if at >= 0 and 0 <= grown < max(EARLY_PRIOR_STEP, EARLY_PRIOR_REFRESH * used):
        return prior
    recent = q.RECENT_ANSWERS.all(conn, {"project": project.id, "n": PRIOR_ANSWERS})
    prior = early_class_prior(project, [(r[0], r[1], float(r[2])) for r in recent])
    with _EARLY_PRIORS_LOCK:
        _EARLY_PRIORS[project.id] = (project.answers_used, len(recent), prior)
    return prior


@dataclass(frozen=True)
class ClipPlan:
    """What re-aggregating a clip would write, from what was read (`plan_clip`): its status as
    read, its answers' count and the verdict; `silver` when a clip the verdict finishes
    becomes a control question."""

    clip_id: int
    status: str
    answers: int
    verdict: ClipVerdict
    silver: bool


def plan_clip(conn: Connection, project: ProjectView, clip_id: int, lock: bool = True) -> ClipPlan:
    """Read one clip's answers with the current skills and aggregate them (reads only: the
    deferred settling runs this outside the write transaction, with `lock` False: on PostgreSQL
    the clip's row is otherwise locked for the caller's write)."""
    status_stmt = q.CLIP_STATUS_PG if lock and _pg(conn) else q.CLIP_STATUS
    status = status_stmt.scalar(conn, {"clip": clip_id})
    rows = q.ANSWERS.all(conn, {"clip": clip_id})
    trusts = [float(r[1]) for r in rows]
    noise = None
    if project.task_type == "continuous":
        sd = rating_noise_of(project, q.CONTROL_ERRORS.all(conn, {"project": project.id, "clip": clip_id}))
        # the background fit's sd over all their answers, else their control answers' alone
        noise = [float(r[7]) if r[7] is not None else sd.get(int(r[6]), sd[None]) for r in rows]
    prior = None
    if project.class_prior is None and project.task_type in ("classification", "binary"):
        prior = _early_prior(conn, project)
    verdict = aggregate_clip(
        project,
        [r[0] for r in rows],
        trusts,
        [r[2] for r in rows],
        [r[3] for r in rows],
        chance=[bool(r[4]) for r in rows],
        noise=noise,
        prior=prior,
    )
    silver = (
        status == "queued"
        and verdict.done
        and not verdict.low_agreement
        and project.task_type in SILVER_TASKS
        and is_silver(
            verdict.label, verdict.confidence, [r[0] for r in rows], trusts, [float(r[5]) for r in rows]
        )
    )
    return ClipPlan(clip_id, status, len(rows), verdict, silver)


def apply_plan(
    conn: Connection, project: ProjectView, plan: ClipPlan, user: int | None, now: datetime
) -> None:
    """Write a clip's plan inside the caller's write transaction: its aggregate, and where the
    redundancy policy finished a queued clip, its status, event and labelled count."""
    status, verdict = plan.status, plan.verdict
    if status == "queued" and verdict.done:
        status = "low_agreement" if verdict.low_agreement else "done"
        if plan.silver:  # a control question from now on, for those who never answered it
            q.SILVER.run(conn, {"clip": plan.clip_id})
        data = {
            "clip": plan.clip_id,
            "label": verdict.label,
            "confidence": verdict.confidence,
            "answers": plan.answers,
        }
        _event(conn, project.id, user, "clip_" + status, data, now)
        if status == "done" and verdict.label is not None and verdict.label != CANT_TELL:
            q.LABELLED.run(conn, {"project": project.id})
    q.CLIP_SET.run(
        conn,
        {
            "clip": plan.clip_id,
            "v_n": plan.answers,
            "v_label": verdict.label,
            "v_confidence": verdict.confidence,
            "v_soft": verdict.soft,
            "v_status": status,
            "now": now,
        },
    )


def reaggregate_clip(
    conn: Connection, project: ProjectView, clip_id: int, user: int | None, now: datetime
) -> None:
    """Re-aggregate one clip with the current skills and let the redundancy policy decide."""
    apply_plan(conn, project, plan_clip(conn, project, clip_id), user, now)


def reaggregate_clips(
    session: AnyConnection, project_id: int, clip_ids: list[int], now: datetime | None = None
) -> None:
    """Re-aggregate these clips of the project with the current skills and flags (e.g. after spammer
    detection flagged one of their annotators): a queued clip may now be done."""
    now = now or utcnow()
    conn = connection_of(session)
    view = load_view(conn, project_id)
    for clip_id in clip_ids:
        reaggregate_clip(conn, view, clip_id, None, now)


def submit_answer(
    session: AnyConnection,
    task_id: int,
    who: Principal,
    value: Any,
    now: datetime | None = None,
    defer_aggregate: bool = False,
    deferred: list[int] | None = None,
) -> dict[str, Any]:
    """Store `value` as the answer to task `task_id`: `{task_id, points, total_points, level}`.

    `defer_aggregate`: a regular clip's re-aggregation waits in `pending_aggregates` (its answer
    count goes up at once) for `engine/live/settle.py`; the server asks for it while other
    requests queue, so that a crowd's simultaneous answers are not each held up by it. The clip
    is then appended to `deferred` (the server's, to settle it: the reply never names a clip).

    NotFoundError: no such task; ForbiddenError: another annotator's task, or the annotator was
    blocked (which ended the lease); ConflictError:
    answered already (a retry) or the lease expired; InvalidError: not an answer this project
    takes. Nothing is stored on any of these.
    """
    now = now or utcnow()
    conn = connection_of(session)
    task = (q.TASK_PG if _pg(conn) else q.TASK).first(conn, {"task": task_id})
    if task is None:
        raise NotFoundError(f"task {task_id} does not exist")
    if task.annotator_id != who.id:
        raise ForbiddenError(f"task {task_id} belongs to another annotator")
    if task.answered_at is not None:
        raise ConflictError(f"task {task_id} is already answered")
    if task.leased_until < now:
        active = q.MEMBER.scalar(conn, {"project": task.project_id, "user": who.id})
        if active is not None and not active:
            raise ForbiddenError(blocked_reason(task.project_id))  # blocking ended the lease
        raise ConflictError(f"the lease of task {task_id} expired; ask for the next task")
    project = load_view(conn, task.project_id)
    answer = normalize_label(project, value, allow_cant_tell=True)
    keys = {"project": project.id, "user": who.id, "now": now}
    row = q.TRUST.first(conn, keys)
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
    if q.STORE.run(conn, values) != 1:
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
        q.COUNT,
        "answer",
        passed,
        now,
        defer_aggregate,
    )
    if defer_aggregate and task.kind == "regular" and deferred is not None:
        deferred.append(int(task.clip_id))
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
    defer_aggregate: bool = False,
) -> None:
    """What an answer and its undo both write after the task itself: the annotator's trust,
    checks, answers, points, check evidence and can't-tell answers (`worker`, in that order;
    `known`: their row exists), the project's answer counts (`count`), the event `kind`, and a
    regular clip's aggregate (or, `defer_aggregate`, its place in `pending_aggregates`). Only
    check answers are logged as events."""
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
    (q.TRUST_SET if known else q.TRUST_NEW).run(conn, {**keys, **values})
    count.run(conn, keys)
    if task.kind in ("control", "consistency"):  # what the dashboard's check columns count; the
        # task row records every answer (a regular answer's event would only grow the log)
        data = {"task": task_id, "clip": task.clip_id, "kind": task.kind, "check": passed}
        _event(conn, project.id, user_id, kind, data, now)
    if task.kind == "regular" and defer_aggregate:
        q.BUMP.run(conn, {"clip": task.clip_id})
        pending = {"clip": task.clip_id, "project": project.id, "user": user_id, "now": now}
        (q.PENDING_ADD_PG if _pg(conn) else q.PENDING_ADD).run(conn, pending)
    elif task.kind == "regular":
        reaggregate_clip(conn, project, task.clip_id, user_id, now)


def undo_answer(
    session: AnyConnection, task_id: int, who: Principal, now: datetime | None = None
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
    task = (q.ANSWERED_PG if _pg(conn) else q.ANSWERED).first(conn, {"task": task_id})
    if task is None:
        raise NotFoundError(f"task {task_id} does not exist")
    if task.annotator_id != who.id:
        raise ForbiddenError(f"task {task_id} belongs to another annotator")
    active = q.MEMBER.scalar(conn, {"project": task.project_id, "user": who.id})
    if active is not None and not active:
        raise ForbiddenError(blocked_reason(task.project_id))  # they could not answer it again
    if task.answered_at is None:
        raise ConflictError(f"task {task_id} has no answer to undo")
    if task.leased_until < now:
        raise ConflictError(f"the lease of task {task_id} ran out: its answer stands")
    keys = {"project": task.project_id, "user": who.id, "task": task_id, "at": task.answered_at, "now": now}
    if q.LATER_MINE.scalar(conn, keys) is not None:
        raise ConflictError("only your last answer can be undone: you answered another clip since")
    if task.kind == "regular":
        pending = q.PENDING_ONE.first(conn, {"clip": task.clip_id})
        if pending is not None:  # its aggregate first: the rule reads the clip's status
            reaggregate_clip(conn, load_view(conn, task.project_id), task.clip_id, pending.user_id, now)
            q.PENDING_DROP.run(conn, {"clip": task.clip_id})
        status = (q.CLIP_STATUS_PG if _pg(conn) else q.CLIP_STATUS).scalar(conn, {"clip": task.clip_id})
        if status != "queued":
            raise ConflictError("this clip's label is already decided: your answer stands")
        if q.LATER_ON_CLIP.scalar(conn, {**keys, "clip": task.clip_id}) is not None:
            raise ConflictError("someone answered this clip after you: your answer stands")
    project = load_view(conn, task.project_id)
    row = q.TRUST.first(conn, keys)
    fresh = (PRIOR_TRUST, 0, 0, 1, task.points, 0.0, 0)
    trust, checked, right, answers, total, evidence, cant = row if row is not None else fresh
    passed = task.passed  # what its check gave then (the crowd's can't-tell rate has moved since)
    if passed is not None and checked > 0:
        weight = check_weight(task.kind, passed)
        trust = revert_trust(trust, passed, float(evidence), weight=weight)
        evidence = max(float(evidence) - weight, 0.0)
        checked -= 1
        right -= int(passed)
    if q.UNSTORE.run(conn, {"task": task_id, "until": now + LEASE}) != 1:
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
        q.UNCOUNT,
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
