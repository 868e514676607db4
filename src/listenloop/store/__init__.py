"""Storage: ORM models, the database (SQLite or PostgreSQL) and its alembic migrations."""

from listenloop.store.database import DEFAULT_URL, Database, make_engine, upgrade
from listenloop.store.models import (
    ApiToken,
    Base,
    Clip,
    Event,
    Project,
    ProjectMember,
    Task,
    User,
    WorkerTrust,
    utcnow,
)

__all__ = [
    "DEFAULT_URL",
    "ApiToken",
    "Base",
    "Clip",
    "Database",
    "Event",
    "Project",
    "ProjectMember",
    "Task",
    "User",
    "WorkerTrust",
    "make_engine",
    "upgrade",
    "utcnow",
]
