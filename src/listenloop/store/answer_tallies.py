"""Reads of `answer_tallies`: a project's answered tasks per annotator and kind, with checks.

The database's triggers keep the tallies (migration 0014), so the savings panel and the
annotator table read one row per annotator and task kind, however many answers and events
the project has.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from listenloop.store.database import connection_of
from listenloop.store.models import AnswerTally
from listenloop.store.prepared import Prepared

_T = AnswerTally.__table__
_ROWS = Prepared(
    select(_T.c.user_id, _T.c.kind, _T.c.answers, _T.c.checked, _T.c.passed).where(
        _T.c.project_id == bindparam("project"), _T.c.answers > 0
    )
)


@dataclass(frozen=True, slots=True)
class AnswerCount:
    """User `user_id` answered `answers` tasks of `kind`; a check judged `checked`, `passed` passed."""

    user_id: int
    kind: str
    answers: int
    checked: int
    passed: int


def answer_tallies(session: Session | Connection, project_id: int) -> list[AnswerCount]:
    """Every annotator's answered tasks of each kind in the project (none left out but empty rows)."""
    rows = _ROWS.all(connection_of(session), {"project": project_id})
    return [AnswerCount(int(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]
