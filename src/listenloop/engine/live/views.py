"""Read-only snapshots of rows for the request path, read with one prepared statement.

Loading ORM objects (identity map, unit of work) costs more than the queries themselves
at hundreds of requests a second; these are plain frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy import bindparam, select

from listenloop.engine.errors import NotFoundError
from listenloop.store.database import AnyConnection, connection_of
from listenloop.store.models import Project
from listenloop.store.prepared import Prepared


@dataclass(frozen=True, slots=True)
class ProjectView:
    """The settings of a project that `next` and `answer` need."""

    id: int
    owner_id: int
    task_type: str
    classes: list[str]
    range_min: float | None
    range_max: float | None
    redundancy_min: int
    redundancy_max: int
    redundancy_tau: float
    control_rate: float
    consistency_rate: float
    trust_threshold: float
    rating_tolerance: float | None  # continuous: the standard error to stop at (None: the default)
    budget: int | None
    invite_only: bool
    is_open: bool  # False: a draft, for its owner only
    answers_used: int
    class_prior: list[float] | None  # set by the background Dawid-Skene fit (engine/learning/skills.py)
    cant_tell_count: int  # can't-tell answers of every kind (the crowd's can't-tell rate)
    state: str  # active, paused or archived (engine/lifecycle.py): only an active project serves tasks


_P = Project.__table__
_FIELDS = [f.name for f in fields(ProjectView)]
# (a view is read-only: its classes and class prior are shared between views of the same text)
_SELECT = Prepared(
    select(*(_P.c[name] for name in _FIELDS)).where(_P.c.id == bindparam("project")), shared_json=True
)


def load_view(session: AnyConnection, project_id: int) -> ProjectView:
    """The project's settings, or NotFoundError."""
    row = _SELECT.first(connection_of(session), {"project": project_id})
    if row is None:
        raise NotFoundError(f"project {project_id} does not exist")
    return ProjectView(*row)
