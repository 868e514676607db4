"""Spammer detection in the live platform: judge, flag, weight down and (if the owner says so) block.

The background skills refresh (`engine/learning/skills.py`, run by the learning service) reads a
project's regular answers, can't-tell included, with `read_spam_inputs`; `find_spammers`
(pure) applies `crowd.trust.detect_spammers` to them; and `write_flags` stores what it found.
A found spammer:

- is flagged with the detection's reason (`project_members.flag_reason`) and `flag_auto` set,
  and an `annotator_flagged` event is logged;
- counts at chance level from then on: their answers carry no evidence in the live
  re-aggregation (`engine/live/aggregate.py`, `chance`) and are left out of the Dawid-Skene refresh,
  so they can never close a clip; the queued clips they answered are re-aggregated at once;
- is blocked when the project's `auto_block_spammers` is on (off by default: blocking is the
  owner's decision), the way the owner's block works (`engine/dashboard.block_member`).

The owner's decision wins until new evidence: the owner's flag or unflag sets
`flag_reviewed_at`, and detection then judges only the answers given after it (the earlier
ones still make up the crowd's consensus for everyone else). So an owner who unflags a worker
is not overruled by the same answers; only `min_answers` new answers that again look like spam
flag them again. Detection never lifts a flag (the owner does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import and_, select

from listenloop.crowd.trust import SPAMMER_COLUMNS, detect_spammers
from listenloop.engine.dashboard import block_member
from listenloop.engine.live.tasks import reaggregate_clips
from listenloop.store.database import Database
from listenloop.store.models import Clip, Event, Project, ProjectMember, Task, User, utcnow

SPAM_TASKS = ("classification", "binary", "multilabel", "events")  # with classes (tag tasks: tag sets)
MIN_ANSWERS = 20  # answers a worker gives before detection judges them

P, T, M = Project.__table__, Task.__table__, ProjectMember.__table__


@dataclass
class SpamInputs:
    """What detection needs, read from the store."""

    project_id: int
    task_type: str
    owner_id: int
    auto_block: bool
    answers: pd.DataFrame  # item, worker, label, at: the regular answers, can't-tell included
    flagged: set[str] = field(default_factory=set)  # workers flagged by detection now
    reviewed: dict[str, datetime] = field(default_factory=dict)  # worker -> the owner's last flag decision


def read_spam_inputs(db: Database, project_id: int) -> SpamInputs:
    """The project's regular answers and its members' flags."""
    with db.read() as session:
        conn = session.connection()
        project = conn.execute(
            select(P.c.task_type, P.c.owner_id, P.c.auto_block_spammers).where(P.c.id == project_id)
        ).one()
        rows = conn.execute(
            select(T.c.clip_id, T.c.annotator_id, T.c.answer, T.c.answered_at).where(
                and_(T.c.project_id == project_id, T.c.kind == "regular", T.c.answered_at.is_not(None))
            )
        ).all()
        members = conn.execute(
            select(M.c.user_id, M.c.flag_auto, M.c.flag_reviewed_at).where(M.c.project_id == project_id)
        ).all()
    table = pd.DataFrame(
        [(str(c), str(u), str(a), t) for c, u, a, t in rows], columns=["item", "worker", "label", "at"]
    )
    return SpamInputs(
        project_id,
        str(project.task_type),
        int(project.owner_id),
        bool(project.auto_block_spammers),
        table,
        {str(m.user_id) for m in members if m.flag_auto},
        {str(m.user_id): m.flag_reviewed_at for m in members if m.flag_reviewed_at is not None},
    )


def find_spammers(inputs: SpamInputs, min_answers: int = MIN_ANSWERS) -> pd.DataFrame:
    """The workers to flag now (`detect_spammers`' table): neither the owner nor those flagged
    already; a worker the owner decided on is judged on the answers given after that decision."""
    if inputs.task_type not in SPAM_TASKS or inputs.answers.empty:
        return pd.DataFrame(columns=SPAMMER_COLUMNS)
    table = inputs.answers.copy()
    for worker, at in inputs.reviewed.items():
        before = (table["worker"] == worker) & (table["at"] <= at)
        table.loc[before, "worker"] = worker + "@reviewed"  # still the crowd's consensus, not judged
    found = detect_spammers(table[["item", "worker", "label"]], min_answers=min_answers)
    skip = inputs.flagged | {str(inputs.owner_id)}
    keep = ~found["worker"].isin(skip) & ~found["worker"].str.endswith("@reviewed")
    return found[keep].reset_index(drop=True)


def chance_workers(inputs: SpamInputs, found: pd.DataFrame) -> set[str]:
    """Workers whose answers count at chance level: flagged by detection before or now."""
    return inputs.flagged | set(found["worker"])


REAGGREGATE_BATCH = 50  # clips re-aggregated per write transaction after a flag (~1 ms each)
# Seconds between two such transactions: longer than the longest sleep of SQLite's busy handler
# (100 ms), so a request waiting for the write lock finds it free at its next try.
REAGGREGATE_PAUSE = 0.12


def write_flags(db: Database, inputs: SpamInputs, found: pd.DataFrame) -> list[dict[str, Any]]:
    """Flag the found spammers (block them where the project says so), log `annotator_flagged`,
    and re-aggregate the queued clips they answered; returns the events' data."""
    if found.empty:
        return []
    now = utcnow()
    out = []
    with db.write() as session:
        project = session.get(Project, inputs.project_id)
        if project is None:
            return []
        names = dict(
            session.execute(
                select(User.id, User.username).where(User.id.in_([int(w) for w in found["worker"]]))
            ).all()
        )
        for row in found.itertuples(index=False):
            user_id = int(row.worker)
            if user_id not in names:
                continue
            member = session.get(ProjectMember, (project.id, user_id))
            if member is None:  # e.g. an admin answering: no member row yet
                member = ProjectMember(project_id=project.id, user_id=user_id, active=True, flagged=False)
                session.add(member)
            if member.flag_auto:
                continue  # flagged meanwhile
            if member.flag_reviewed_at != inputs.reviewed.get(str(row.worker)):
                continue  # the owner decided while detection ran: their decision stands
            member.flagged, member.flag_auto, member.flag_reason = True, True, str(row.reason)
            blocked = bool(project.auto_block_spammers) and member.active
            if blocked:
                block_member(session, project.id, member)
            data = {
                "username": names[user_id],
                "kind": str(row.kind),
                "reason": str(row.reason),
                "answers": int(row.answers),
                "automatic": True,
                "blocked": blocked,
            }
            session.add(Event(project_id=project.id, user_id=None, kind="annotator_flagged", data=data))
            if blocked:
                session.add(
                    Event(
                        project_id=project.id,
                        user_id=None,
                        kind="member_blocked",
                        data={"username": names[user_id], "automatic": True},
                    )
                )
            out.append(data)
        session.flush()
        spammers = [int(w) for w in found["worker"] if int(w) in names]
        clips: list[int] = session.scalars(
            select(Task.clip_id)
            .join(Clip, Clip.id == Task.clip_id)
            .where(
                Task.project_id == project.id,
                Task.annotator_id.in_(spammers),
                Task.kind == "regular",
                Task.answered_at.is_not(None),
                Clip.status == "queued",
            )
            .distinct()
        ).all()
    # In short transactions with pauses between: a crowd of random answerers can have answered
    # every open clip, and one transaction over all of them held the write lock that every
    # `next` and `answer` waits for (a clip left for later is re-aggregated by its next answer too).
    for start in range(0, len(clips), REAGGREGATE_BATCH):
        if start:
            time.sleep(REAGGREGATE_PAUSE)
        with db.write() as session:
            reaggregate_clips(session, inputs.project_id, list(clips[start : start + REAGGREGATE_BATCH]), now)
    return out
