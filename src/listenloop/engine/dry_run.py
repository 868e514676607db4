"""A project's dry run: `listenloop simulate` on the clips its owner uploaded with labels, so that
the owner sees which query strategy pays on their data before paying for answers.

The owner asks for one (`request_dry_run`: a queued row, checked for enough labels first); the
learning service's process takes it (`claim_dry_run`), reads the labelled clips, computes their
features and runs the simulation (`compute_dry_run`, `sim/dry_run.py`), writing its progress as it
goes (`record_progress`) and the figures and verdict at the end (`finish_dry_run`).
`dry_run_status` is what `GET /projects/{id}/dry-run` shows. Only `compute_dry_run` imports the
learning core: the server process that queues and reads dry runs never loads scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from listenloop.engine.errors import ConflictError, InvalidError, NotFoundError
from listenloop.errors import ListenloopError
from listenloop.sim.dry_run import check_labels
from listenloop.store.database import Database
from listenloop.store.models import Clip, DryRun, Project, utcnow

ACTIVE = ("queued", "running")
#: A running dry run whose heartbeat is older than this is taken over (its process died).
STALE = timedelta(minutes=10)
MATRIX_PREFIX = "dryrun"  # feature matrix of a project's labelled clips: dryrun-<project id>


def _seed_labels(session: Session, project_id: int) -> list[str]:
    """The labels the owner uploaded with the project's clips (control clips excluded)."""
    query = select(Clip.seed_label).where(
        Clip.project_id == project_id, Clip.seed_label.is_not(None), Clip.is_gold.is_(False)
    )
    return [str(v) for v in session.scalars(query)]


def request_dry_run(session: Session, project: Project, requested_by: int | None) -> dict[str, Any]:
    """Queue a dry run of `project` (the caller checked ownership) and return its status.

    InvalidError (422) when the labels cannot support one (too few, one class, a class with a
    single clip, a task type without classes); ConflictError (409) while one is queued or running.
    """
    labels = _seed_labels(session, project.id)
    try:
        check_labels(labels, project.task_type)
    except ListenloopError as exc:
        raise InvalidError(str(exc)) from exc
    active = session.scalar(
        select(DryRun.id).where(DryRun.project_id == project.id, DryRun.status.in_(ACTIVE)).limit(1)
    )
    if active is not None:
        raise ConflictError(f"dry run {active} of project {project.id} is still {ACTIVE[0]} or running")
    run = DryRun(project_id=project.id, requested_by=requested_by, status="queued", labels=len(labels))
    run.done = 0
    session.add(run)
    session.flush()
    return describe(run)


def describe(run: DryRun) -> dict[str, Any]:
    """A dry run as the API shows it."""
    return {
        "id": run.id,
        "status": run.status,
        "labels": run.labels,
        "progress": {
            "done": run.done or 0,
            "total": run.total,
            "share": (run.done or 0) / run.total if run.total else 0.0,
        },
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "seconds": run.seconds,
        "result": run.result,
        "error": run.error,
    }


def dry_run_status(session: Session, project: Project) -> dict[str, Any]:
    """The project's newest dry run, or NotFoundError when it never had one."""
    run = session.scalar(
        select(DryRun).where(DryRun.project_id == project.id).order_by(DryRun.id.desc()).limit(1)
    )
    if run is None:
        raise NotFoundError(f"project {project.id} has no dry run yet: POST to start one")
    return describe(run)


# -- the learning service's side ---------------------------------------------------------------


@dataclass
class Claimed:
    """A dry run this process took: its id and project."""

    run_id: int
    project_id: int


def claim_dry_run(db: Database, now: datetime | None = None) -> Claimed | None:
    """Take the oldest queued dry run (or a running one whose heartbeat stopped): one conditional
    UPDATE, so that of several processes on one database exactly one runs it."""
    now = now or utcnow()
    stale = now - STALE
    waiting = or_(DryRun.status == "queued", (DryRun.status == "running") & (DryRun.updated_at < stale))
    with db.read() as session:
        found = session.execute(
            select(DryRun.id, DryRun.project_id, DryRun.status, DryRun.updated_at)
            .where(waiting)
            .order_by(DryRun.id)
            .limit(1)
        ).first()
    if found is None:
        return None
    beat = DryRun.updated_at.is_(None) if found.updated_at is None else DryRun.updated_at == found.updated_at
    with db.write() as session:
        taken = session.execute(
            update(DryRun)
            .where(DryRun.id == found.id, DryRun.status == found.status, beat)
            .values(status="running", started_at=now, updated_at=now, done=0)
        )
    return Claimed(found.id, found.project_id) if taken.rowcount == 1 else None


def record_progress(db: Database, run_id: int, done: int, total: int) -> None:
    """The run's progress (and heartbeat)."""
    with db.write() as session:
        session.execute(
            update(DryRun)
            .where(DryRun.id == run_id, DryRun.status == "running")
            .values(done=done, total=total, updated_at=utcnow())
        )


def requeue_dry_run(db: Database, run_id: int) -> None:
    """Put a run this process stopped back in the queue (the next service start runs it)."""
    with db.write() as session:
        session.execute(
            update(DryRun)
            .where(DryRun.id == run_id, DryRun.status == "running")
            .values(status="queued", done=0, total=None, started_at=None, updated_at=None)
        )


def finish_dry_run(
    db: Database, run_id: int, *, result: dict[str, Any] | None = None, error: str | None = None
) -> None:
    """Store the figures and verdict (done), or why it failed (failed)."""
    now = utcnow()
    with db.write() as session:
        run = session.get(DryRun, run_id)
        if run is None:  # the project was deleted meanwhile
            return
        run.status = "failed" if error is not None else "done"
        run.result = result
        run.error = error
        run.finished_at = now
        run.updated_at = now
        if run.started_at is not None:
            run.seconds = round((now - run.started_at).total_seconds(), 3)


def read_inputs(db: Database, claimed: Claimed, data_dir: Path) -> dict[str, Any]:
    """What `compute_dry_run` needs: the project's learning settings and its labelled clips, in
    clip-id order."""
    with db.read() as session:
        project = session.get(Project, claimed.project_id)
        if project is None:
            raise NotFoundError(f"project {claimed.project_id} does not exist")
        rows = session.execute(
            select(Clip.id, Clip.path, Clip.sha256, Clip.seed_label)
            .where(Clip.project_id == project.id, Clip.seed_label.is_not(None), Clip.is_gold.is_(False))
            .order_by(Clip.id)
        ).all()
        return {
            "root": data_dir,
            "project_id": project.id,
            "task_type": project.task_type,
            "classes": list(project.classes or []),
            "feature_set": project.feature_set,
            "learner": project.learner,
            "strategy": project.strategy,
            "retrain_every": int(project.retrain_every or 1),
            "clip_ids": [r.id for r in rows],
            "paths": [r.path for r in rows],
            "digests": [r.sha256 for r in rows],
            "labels": [str(r.seed_label) for r in rows],
        }


def compute_dry_run(
    inputs: dict[str, Any], progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Features of the labelled clips (the feature cache under the data folder), then the simulation
    and verdict (`sim.dry_run`). Clips whose audio gives no features are left out and counted."""
    from listenloop.features.matrix import pool_features
    from listenloop.sim.dry_run import plan_dry_run, run_dry_run

    cache = Path(inputs["root"]) / "features"
    table = pool_features(
        inputs["root"],
        np.asarray(inputs["clip_ids"], dtype=np.int64),
        inputs["paths"],
        inputs["digests"],
        inputs["feature_set"],
        matrix_dir=cache / "matrices",
        name=f"{MATRIX_PREFIX}-{inputs['project_id']}",
        cache_dir=cache,
        workers=1,
    )
    kept = np.asarray(table.kept, dtype=np.int64)
    X = np.asarray(table.X[np.arange(len(kept))], dtype=np.float32)  # the labelled clips only: small
    labels = np.asarray(inputs["labels"], dtype=str)[kept]
    plan = plan_dry_run(
        labels,
        task_type=inputs["task_type"],
        strategy=inputs["strategy"],
        learner=inputs["learner"],
        features=inputs["feature_set"],
        retrain_every=inputs["retrain_every"],
        classes=len(inputs["classes"]) or None,
    )
    out = run_dry_run(X, labels, plan, progress)
    out["skipped"] = int(len(inputs["clip_ids"]) - len(kept))
    return out


def active_dry_runs(session: Session) -> int:
    """Dry runs queued or running (the service polls for them)."""
    return int(session.scalar(select(func.count()).where(DryRun.status.in_(ACTIVE))) or 0)
