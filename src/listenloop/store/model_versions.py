"""Reads and writes of model versions (`model_runs` rows with a `version`) and of test clips."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from listenloop.store.models import Clip, ModelRun

READ_BATCH = 20000  # clip rows per fetch when a large project's names are looked up


def versions(session: Session, project_id: int) -> list[ModelRun]:
    """The project's model versions, oldest first."""
    query = (
        select(ModelRun)
        .where(ModelRun.project_id == project_id, ModelRun.version.is_not(None))
        .order_by(ModelRun.version)
    )
    return list(session.scalars(query))


def version(session: Session, project_id: int, number: int | None = None) -> ModelRun | None:
    """Version `number` of the project's model (None: the newest), or None when there is none."""
    query = select(ModelRun).where(ModelRun.project_id == project_id, ModelRun.version.is_not(None))
    if number is not None:
        query = query.where(ModelRun.version == number)
    return session.scalars(query.order_by(ModelRun.version.desc()).limit(1)).first()


def file_names(session: Session, project_id: int, clip_ids: Iterable[int]) -> dict[int, str]:
    """Uploaded file names of the project's clips `clip_ids` (the others left out), read in batches."""
    wanted = set(clip_ids)
    out: dict[int, str] = {}
    query = select(Clip.id, Clip.file_name).where(Clip.project_id == project_id).order_by(Clip.id)
    for batch in session.execute(query.execution_options(yield_per=READ_BATCH)).partitions():
        out.update((r.id, r.file_name) for r in batch if r.id in wanted)
    return out


def clip_ids_of(session: Session, project_id: int, clip_ids: list[int]) -> set[int]:
    """Which of `clip_ids` are clips of the project."""
    found: set[int] = set()
    for start in range(0, len(clip_ids), 1000):
        part = clip_ids[start : start + 1000]
        found.update(session.scalars(select(Clip.id).where(Clip.project_id == project_id, Clip.id.in_(part))))
    return found


def set_arm(session: Session, project_id: int, clip_ids: list[int], arm: str, *, clear: bool = True) -> int:
    """Put the project's clips `clip_ids` in `arm` (with `clear`, first take every clip of the
    project out of it); how many clips are in it now."""
    table = Clip.__table__
    conn = session.connection()
    if clear:
        conn.execute(
            update(table).where(table.c.project_id == project_id, table.c.arm == arm).values(arm=None)
        )
    for start in range(0, len(clip_ids), 1000):
        part = clip_ids[start : start + 1000]
        conn.execute(
            update(table).where(table.c.project_id == project_id, table.c.id.in_(part)).values(arm=arm)
        )
    return len(list(arm_clips(session, project_id, arm)))


def arm_clips(session: Session, project_id: int, arm: str) -> Iterator[int]:
    """Ids of the project's clips in `arm`."""
    return iter(session.scalars(select(Clip.id).where(Clip.project_id == project_id, Clip.arm == arm)))
