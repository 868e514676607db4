"""A project's lifecycle: pause, resume, archive and delete it, and the retention of raw answers.

- **Paused**: annotators get no new task (`next` answers 409 with the reason); answers to leases
  already open still count, so no one's work in hand is lost. The learning service goes on.
- **Archived**: read-only. No tasks, no answers (open leases are ended, as removing a member does),
  no uploads, no learning rounds; the owner still browses, exports and downloads everything.
  `resume` brings a paused or archived project back to active.
- **Deleted**: after a confirmation (the project's name, exactly), its rows go (clips, answers,
  trust, runs, members, its events) and so do its audio files and cached spectrograms that no
  clip of another project uses (the store is content-addressed: two projects may share a file).
  An audit event (`project_deleted`, with no project id so that it outlives the project) records
  who deleted what and when.
- **Retention** (`retention_days`): the raw answers (regular and consistency) of a clip that has
  been final (done, low-agreement or discarded) for that many days are deleted; the clip's
  aggregate (label, confidence, soft label, answer count) stays, and so do the owner's expert
  answers and control answers (they carry the trust of the annotators). A background job
  (`apply_retention`) in the learning service sweeps every `RETENTION_EVERY`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from listenloop.engine.accounts import Principal
from listenloop.engine.errors import ConflictError, InvalidError
from listenloop.engine.live.media import spectrogram_path
from listenloop.engine.projects import require_owner
from listenloop.store.models import Clip, Event, Project, Task, utcnow

ACTIONS = {"pause": "paused", "resume": "active", "archive": "archived"}
# Which states each action may start from (resume also brings an archived project back).
_FROM = {"pause": ("active",), "resume": ("paused", "archived"), "archive": ("active", "paused")}
FINAL_STATUSES = ("done", "low_agreement", "discarded")
RAW_KINDS = ("regular", "consistency")  # what retention deletes: control and expert answers stay
RETENTION_EVERY = timedelta(hours=1)
MAX_RETENTION_DAYS = 36_500
_BATCH = 500


def state_refusal(project_id: int, state: str) -> str | None:
    """Why a project in `state` serves no task (None: it does)."""
    if state == "paused":
        return f"project {project_id} is paused by its owner: no new tasks until it is resumed"
    if state == "archived":
        return f"project {project_id} is archived: it takes no more answers"
    return None


def require_writable(project: Project) -> None:
    """ConflictError (409) for an archived project (uploads, labels, examples: it is read-only)."""
    if project.state == "archived":
        raise ConflictError(f"project {project.id} is archived (read-only): resume it first")


def change_state(session: Session, project: Project, who: Principal, action: str) -> dict[str, Any]:
    """Pause, resume or archive the project (owner): `{project_id, state}`. The same state again is
    a no-op; an impossible move (pause an archived project) is a ConflictError with the way out."""
    require_owner(project, who)
    if action not in ACTIONS:
        raise InvalidError(f"action {action!r} is not one of {', '.join(ACTIONS)}")
    target = ACTIONS[action]
    if project.state == target:
        return {"project_id": project.id, "state": target}
    if project.state not in _FROM[action]:
        raise ConflictError(f"project {project.id} is {project.state}: resume it before you {action} it")
    now = utcnow()
    if target == "archived":  # its open leases end: an answer to one gets 409 (expired)
        session.execute(
            update(Task)
            .where(Task.project_id == project.id, Task.answered_at.is_(None), Task.leased_until > now)
            .values(leased_until=now)
        )
    before = project.state
    project.state = target
    session.add(
        Event(
            project_id=project.id,
            user_id=who.id,
            kind=f"project_{target if target != 'active' else 'resumed'}",
            data={"from": before, "to": target},
            created_at=now,
        )
    )
    session.flush()
    return {"project_id": project.id, "state": target}


@dataclass
class Deletion:
    """What `delete_project` removed from the database, and the files to remove once it committed."""

    record: dict[str, Any]
    audit_id: int
    files: list[tuple[str, str]] = field(default_factory=list)  # (audio path, sha256) no one else uses


def delete_project(session: Session, project: Project, who: Principal, confirm: str) -> Deletion:
    """Delete the project's rows for good (owner), once `confirm` is its name; the audit event
    (`project_deleted`, no project id: it outlives the project) records who deleted what.
    The caller commits, then removes `files` (`remove_files`) and records their count
    (`record_files`): a failed transaction leaves every file in place.

    InvalidError: `confirm` is not the project's name; ConflictError: a learning round holds the
    project right now (try again when it ends).
    """
    require_owner(project, who)
    if confirm != project.name:
        raise InvalidError(
            f"to delete project {project.id}, send its name exactly as confirmation "
            '({"confirm": "NAME"}); nothing was deleted'
        )
    now = utcnow()
    if project.learning_lease_until is not None and project.learning_lease_until > now:
        raise ConflictError(
            f"a learning round is working on project {project.id}; archive it, then delete it in a minute"
        )
    rows = session.execute(select(Clip.path, Clip.sha256).where(Clip.project_id == project.id)).all()
    files = {(str(rel), str(sha)) for rel, sha in rows}
    clips = session.scalar(select(func.count()).select_from(Clip).where(Clip.project_id == project.id))
    answered = (Task.project_id == project.id) & Task.answered_at.is_not(None)
    answers = session.scalar(select(func.count()).select_from(Task).where(answered))
    shas = sorted({sha for _, sha in files})
    shared: set[str] = set()
    for start in range(0, len(shas), _BATCH):
        batch = shas[start : start + _BATCH]
        others = select(Clip.sha256).where(Clip.sha256.in_(batch), Clip.project_id != project.id)
        shared.update(session.scalars(others.distinct()))
    session.execute(delete(Task).where(Task.project_id == project.id))
    session.execute(delete(Clip).where(Clip.project_id == project.id))
    session.execute(delete(Event).where(Event.project_id == project.id))
    record: dict[str, Any] = {
        "project": project.id,
        "name": project.name,
        "owner_id": project.owner_id,
        "clips": int(clips or 0),
        "answers": int(answers or 0),
    }
    session.delete(project)  # the rest (members, trust, runs, tallies) by ON DELETE CASCADE
    audit = Event(project_id=None, user_id=who.id, kind="project_deleted", data=record, created_at=now)
    session.add(audit)
    session.flush()
    # the store's files only: a bulk import's clips reference the owner's own files in place
    # (an absolute path), which are not listenloop's to delete
    doomed = sorted((rel, sha) for rel, sha in files if sha not in shared and not Path(rel).is_absolute())
    return Deletion(dict(record), audit.id, doomed)


def remove_files(data_dir: Path, files: list[tuple[str, str]]) -> dict[str, int]:
    """Remove the audio files and their cached spectrograms: `{files_removed, files_kept}` (kept: a
    removal failed; the server's start-up clean-up removes audio no clip refers to)."""
    removed = kept = 0
    for rel, sha in files:
        for target, audio in ((data_dir / rel, True), (data_dir / spectrogram_path(sha), False)):
            try:
                if target.is_file():
                    target.unlink()
                    removed += audio
            except OSError:
                kept += audio
    return {"files_removed": removed, "files_kept": kept}


def remove_models(data_dir: Path, project_id: int) -> None:
    """Remove the project's model versions' files (`DATA/models/project-ID`, the learning
    service's folder for them); their rows went with the project."""
    from listenloop.engine.learning.service import MODELS_FOLDER  # the service's own layout

    shutil.rmtree(data_dir / MODELS_FOLDER / f"project-{int(project_id)}", ignore_errors=True)


def record_files(session: Session, deletion: Deletion, counts: dict[str, int]) -> dict[str, Any]:
    """Add the files' counts to the deletion's audit event; returns the whole record."""
    audit = session.get(Event, deletion.audit_id)
    record = {**deletion.record, **counts}
    if audit is not None:
        audit.data = record
    return record


def set_retention(session: Session, project: Project, who: Principal, days: int | None) -> dict[str, Any]:
    """Set how many days raw answers of final clips are kept (owner; None: for ever)."""
    require_owner(project, who)
    if days is not None and not 0 <= days <= MAX_RETENTION_DAYS:
        raise InvalidError(f"retention must be from 0 to {MAX_RETENTION_DAYS} days, or null, not {days}")
    project.retention_days = days
    session.add(Event(project_id=project.id, user_id=who.id, kind="retention_changed", data={"days": days}))
    session.flush()
    return {"project_id": project.id, "retention_days": days}


def retention_cutoff(days: int, now: datetime) -> datetime:
    """Answers of clips final before this moment are past their retention."""
    return now - timedelta(days=days)


def apply_retention(session: Session, now: datetime | None = None) -> dict[int, int]:
    """Delete the raw answers past every project's retention: `{project_id: answers deleted}` (only
    projects where something was deleted). One DELETE per project, by clip status and final time;
    an event per project records how many."""
    now = now or utcnow()
    rows = session.execute(
        select(Project.id, Project.retention_days).where(Project.retention_days.is_not(None))
    ).all()
    deleted: dict[int, int] = {}
    for project_id, days in rows:
        cutoff = retention_cutoff(int(days), now)
        final = select(Clip.id).where(
            Clip.project_id == project_id,
            Clip.status.in_(FINAL_STATUSES),
            Clip.is_gold.is_(False),
            Clip.updated_at <= cutoff,
        )
        result = session.execute(
            delete(Task).where(
                Task.project_id == project_id,
                Task.kind.in_(RAW_KINDS),
                Task.answered_at.is_not(None),
                Task.answered_at <= cutoff,
                Task.clip_id.in_(final),
            )
        )
        count = int(result.rowcount or 0)  # type: ignore[attr-defined]
        if count:
            deleted[project_id] = count
            session.add(
                Event(
                    project_id=project_id,
                    user_id=None,
                    kind="answers_expired",
                    data={"answers": count, "retention_days": int(days)},
                    created_at=now,
                )
            )
    session.flush()
    return deleted
