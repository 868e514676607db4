"""Reads of `label_tallies`: a project's clips counted by (source, label).

The database's triggers keep the tallies (migration 0014), so the dashboard's label
distribution reads one row per label and source, however many clips the project holds.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from listenloop.store.database import connection_of
from listenloop.store.models import LabelTally
from listenloop.store.prepared import Prepared

_T = LabelTally.__table__
_ROWS = Prepared(
    select(_T.c.source, _T.c.label, _T.c.clips).where(_T.c.project_id == bindparam("project"), _T.c.clips > 0)
)


def label_tallies(session: Session | Connection, project_id: int) -> list[tuple[str, str, int]]:
    """Every non-empty (source, label, clips) of the project; source is crowd, seed or expert."""
    rows = _ROWS.all(connection_of(session), {"project": project_id})
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]
