"""Points, levels, streaks, badges and leaderboards: what keeps annotators coming back (000_).

iHEARu-PLAY pays its players in points instead of money. The points are earned in
`engine.live.tasks.submit_answer` by `points_for` (stored per answered task in `tasks.points` and
summed per project in `worker_trust.points`); everything else here only reads them.

Nothing here may tell an annotator whether a task was a check question or what their trust
is (issue 16): the points of an answer depend on the answer alone (`POINTS_PER_ANSWER`, or
the lower `CANT_TELL_POINTS` for "can't tell"), the same for every kind of task, never on
trust, which checks move. Quality still counts, but only through values the background skills
refresh sets (`worker_trust.skill`, the crowd model's estimate of an annotator's accuracy,
refreshed every few dozen answers of the project, never by one reply): the leaderboards rank
by `score`, the points weighted by that estimate (points alone where there is none yet), and
the "trusted annotator" badge needs an estimate of at least `TRUSTED_AT`. So a fast spammer
collects points but not a place on the board.

The rules are pure functions (`level_of`, `streaks`, `badges_for`, `rank_rows`) with small
query wrappers around them (`user_progress`, `leaderboard`), so that they can be tested with
known answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from listenloop.crowd.redundancy import CANT_TELL
from listenloop.store.models import ProjectMember, User, WorkerTrust, utcnow
from listenloop.store.tasks import answer_days

POINTS_PER_ANSWER = 10
CANT_TELL_POINTS = 2  # capped: "can't tell" is allowed, but it must not pay like listening
TRUSTED_AT = 0.7  # the background accuracy estimate the trusted badge needs
POINTS_PER_LEVEL = 200
TRUSTED_MIN_ANSWERS = 20  # the trusted badge needs this many answers in one project
LEADERBOARD_SIZE = 20
MAX_OFFSET_MINUTES = 14 * 60  # the widest time-zone offset there is


@dataclass(frozen=True)
class Badge:
    """A badge: `id` (stable), its name, and what earns it."""

    id: str
    name: str
    description: str


BADGES: tuple[Badge, ...] = (
    Badge("first_answer", "First note", "Answer your first clip."),
    Badge("answers_10", "Warming up", "Answer 10 clips."),
    Badge("answers_100", "Keen ear", "Answer 100 clips."),
    Badge("answers_1000", "Golden ear", "Answer 1,000 clips."),
    Badge("streak_3", "Three in a row", "Answer on 3 days in a row."),
    Badge("streak_7", "Week of listening", "Answer on 7 days in a row."),
    Badge(
        "trusted",
        "Trusted annotator",
        "Answer 20 clips of a project carefully enough that the crowd model rates you 70 % accurate.",
    ),
)
_ANSWER_BADGES = {"first_answer": 1, "answers_10": 10, "answers_100": 100, "answers_1000": 1000}
_STREAK_BADGES = {"streak_3": 3, "streak_7": 7}


def points_for(answer: str) -> int:
    """The points an answer earns: the same rule for every kind of task, from the answer alone."""
    return CANT_TELL_POINTS if answer == CANT_TELL else POINTS_PER_ANSWER


def level_of(points: int) -> int:
    """The level of a points total: 1 + points // POINTS_PER_LEVEL (as `submit_answer` reports it)."""
    return 1 + max(int(points), 0) // POINTS_PER_LEVEL


def level_info(points: int) -> dict[str, int]:
    """`{level, level_at, next_level_at}`: the level, the points where it began and where the next begins."""
    level = level_of(points)
    return {
        "level": level,
        "level_at": (level - 1) * POINTS_PER_LEVEL,
        "next_level_at": level * POINTS_PER_LEVEL,
    }


def streaks(days: Iterable[date], today: date) -> tuple[int, int]:
    """(current, best) runs of consecutive days with at least one answer.

    The current streak still counts when the last answer was yesterday (today is not over);
    it is 0 when the last day with an answer is older.
    """
    ordered = sorted(set(days))
    best = run = 0
    previous: date | None = None
    for day in ordered:
        run = run + 1 if previous is not None and day - previous == timedelta(days=1) else 1
        best = max(best, run)
        previous = day
    if previous is None or today - previous > timedelta(days=1):
        return 0, best
    return run, best


def badges_for(answers: int, best_streak: int, trusted: bool) -> list[str]:
    """The ids of the badges earned, in `BADGES` order."""
    earned = {b for b, n in _ANSWER_BADGES.items() if answers >= n}
    earned |= {b for b, n in _STREAK_BADGES.items() if best_streak >= n}
    if trusted:
        earned.add("trusted")
    return [b.id for b in BADGES if b.id in earned]


def local_day(moment: datetime, offset_minutes: int = 0) -> date:
    """The calendar day of a naive UTC time at a UTC offset (minutes east of Greenwich)."""
    return (moment + timedelta(minutes=offset_minutes)).date()


def rank_rows(rows: Sequence[tuple[int, str, int, int, int]]) -> list[dict[str, Any]]:
    """Leaderboard entries from (user_id, username, points, answers, score) rows.

    Ordered by score (points weighted by the background accuracy estimate), then points, then
    answers (more first), then username; equal score, points and answers share a rank (1, 2, 2, 4).
    """
    ordered = sorted(rows, key=lambda r: (-r[4], -r[2], -r[3], r[1]))
    out: list[dict[str, Any]] = []
    for i, (user_id, username, points, answers, score) in enumerate(ordered):
        previous = out[-1] if out else None
        same = previous is not None and (previous["score"], previous["points"], previous["answers"]) == (
            score,
            points,
            answers,
        )
        rank = previous["rank"] if same and previous is not None else i + 1
        out.append(
            {
                "rank": rank,
                "user_id": user_id,
                "username": username,
                "score": int(score),
                "points": int(points),
                "answers": int(answers),
                "level": level_of(points),
            }
        )
    return out


def _check_offset(offset_minutes: int) -> int:
    return max(-MAX_OFFSET_MINUTES, min(MAX_OFFSET_MINUTES, int(offset_minutes)))


def user_progress(
    session: Session,
    user_id: int,
    *,
    project_id: int | None = None,
    now: datetime | None = None,
    offset_minutes: int = 0,
) -> dict[str, Any]:
    """An annotator's standing over all projects (and in `project_id`, when given).

    `{points, answers, level, level_at, next_level_at, streak_days, best_streak_days,
    answers_today, badges: [{id, name, description, earned}], project: {project_id, points,
    answers, level, level_at, next_level_at} | None}`. Days are calendar days at
    `offset_minutes` from UTC (the browser's time zone).
    """
    now = now or utcnow()
    offset = _check_offset(offset_minutes)
    totals = session.execute(
        select(
            func.coalesce(func.sum(WorkerTrust.points), 0),
            func.coalesce(func.sum(WorkerTrust.n_answers), 0),
        ).where(WorkerTrust.user_id == user_id)
    ).one()
    points, answers = int(totals[0]), int(totals[1])
    trusted = (
        session.scalar(
            select(func.count())
            .select_from(WorkerTrust)
            .where(
                WorkerTrust.user_id == user_id,
                WorkerTrust.skill >= TRUSTED_AT,  # the background estimate, never the live trust
                WorkerTrust.n_answers >= TRUSTED_MIN_ANSWERS,
            )
        )
        or 0
    ) > 0
    today = local_day(now, offset)
    days = answer_days(session, user_id, offset)
    current, best = streaks(days, today)
    earned = set(badges_for(answers, best, trusted))
    project: dict[str, Any] | None = None
    if project_id is not None:
        row = session.execute(
            select(WorkerTrust.points, WorkerTrust.n_answers).where(
                WorkerTrust.user_id == user_id, WorkerTrust.project_id == project_id
            )
        ).first()
        p_points, p_answers = (int(row[0]), int(row[1])) if row is not None else (0, 0)
        project = {"project_id": project_id, "points": p_points, "answers": p_answers, **level_info(p_points)}
    return {
        "points": points,
        "answers": answers,
        **level_info(points),
        "streak_days": current,
        "best_streak_days": best,
        "answers_today": days.get(today, 0),
        "badges": [
            {"id": b.id, "name": b.name, "description": b.description, "earned": b.id in earned}
            for b in BADGES
        ],
        "project": project,
    }


def leaderboard(
    session: Session, *, project_id: int | None = None, limit: int = LEADERBOARD_SIZE, me: int | None = None
) -> dict[str, Any]:
    """The top `limit` annotators by score, overall or in one project.

    `{project_id, entries: [{rank, username, score, points, answers, level}], me: entry | None}`;
    `score` is the points weighted by the crowd model's accuracy estimate of the last
    background skills refresh (per project; points alone where there is none; nothing where
    that refresh's spammer detection flagged the annotator), so it moves only when that
    refresh runs. `me` is the entry of user `me` (also when outside the top).
    Annotators removed from a project are left off its board. No trust or user id is shown.
    """
    weight = case((ProjectMember.flag_auto.is_(True), 0.0), else_=func.coalesce(WorkerTrust.skill, 1.0))
    query = (
        select(
            WorkerTrust.user_id,
            User.username,
            func.sum(WorkerTrust.points),
            func.sum(WorkerTrust.n_answers),
            func.sum(WorkerTrust.points * weight),
        )
        .join(User, User.id == WorkerTrust.user_id)
        .outerjoin(
            ProjectMember,
            and_(
                ProjectMember.project_id == WorkerTrust.project_id,
                ProjectMember.user_id == WorkerTrust.user_id,
            ),
        )
    )
    if project_id is not None:
        removed = select(ProjectMember.user_id).where(
            ProjectMember.project_id == project_id, ProjectMember.active.is_(False)
        )
        query = query.where(WorkerTrust.project_id == project_id, WorkerTrust.user_id.not_in(removed))
    query = query.where(WorkerTrust.n_answers > 0).group_by(WorkerTrust.user_id, User.username)
    ranked = rank_rows(
        [
            (int(r[0]), str(r[1]), int(r[2] or 0), int(r[3] or 0), round(float(r[4] or 0.0)))
            for r in session.execute(query)
        ]
    )
    mine = next((e for e in ranked if e["user_id"] == me), None) if me is not None else None

    def public(entry: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in entry.items() if k != "user_id"} | {"me": entry["user_id"] == me}

    return {
        "project_id": project_id,
        "entries": [public(e) for e in ranked[: max(limit, 0)]],
        "me": public(mine) if mine is not None else None,
    }
