"""Reads of `clip_tallies`: a project's clips counted by (status, is_gold, seeded, n_answers).

The database's triggers keep the tallies (migration 0013), so these reads cost a few rows per
project however many clips it holds: what `status` and the dashboard poll.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from listenloop.store.database import connection_of
from listenloop.store.models import ClipTally
from listenloop.store.prepared import Prepared

_T = ClipTally.__table__
_ROWS = Prepared(
    select(_T.c.status, _T.c.is_gold, _T.c.seeded, _T.c.n_answers, _T.c.clips).where(
        _T.c.project_id == bindparam("project"), _T.c.clips > 0
    )
)


@dataclass(frozen=True, slots=True)
class Tally:
    """`clips` clips of a project have this status, gold flag, seed label (or none) and answers."""

    status: str
    is_gold: bool
    seeded: bool
    n_answers: int
    clips: int


def tallies(session: Session | Connection, project_id: int) -> list[Tally]:
    """Every non-empty tally of the project."""
    rows = _ROWS.all(connection_of(session), {"project": project_id})
    return [Tally(str(r[0]), bool(r[1]), bool(r[2]), int(r[3]), int(r[4])) for r in rows]
