"""Reads of the event log that requests make: the newest event of some kinds, by index."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.orm import Session

from listenloop.store.database import connection_of
from listenloop.store.models import Event
from listenloop.store.prepared import Prepared

_E = Event.__table__
# one seek per kind on ix_events_project_kind (project_id, kind, id): max(id) reads its last entry
_NEWEST_ID = Prepared(
    select(func.max(_E.c.id)).where(_E.c.project_id == bindparam("project"), _E.c.kind == bindparam("kind"))
)
_BY_ID = Prepared(select(_E.c.kind, _E.c.data, _E.c.created_at).where(_E.c.id == bindparam("id")))


def newest_event(
    session: Session | Connection, project_id: int, kinds: Sequence[str]
) -> tuple[str, dict[str, Any], datetime] | None:
    """(kind, data, created_at) of the project's newest event of one of `kinds`, or None."""
    conn = connection_of(session)
    ids = [_NEWEST_ID.scalar(conn, {"project": project_id, "kind": k}) for k in kinds]
    found = [i for i in ids if i is not None]
    if not found:
        return None
    row = _BY_ID.first(conn, {"id": max(found)})
    return None if row is None else (str(row[0]), dict(row[1] or {}), row[2])
