"""Label Studio tasks into a project: each task's audio becomes a clip, each annotation an answer.

Three steps, so that the slow ones hold no database lock:
1. `plan_import` (no database, no audio): reads every task's annotations into answers the
   project takes (`normalize_label`), and what audio the task names. A skipped annotation
   (`was_cancelled`) is a "can't tell" answer (the export writes "can't tell" that way); a
   `ground_truth` annotation is the owner's expert label; predictions are not answers and are
   left out (counted in the report). An annotation that does not fit (no `choices` result, a
   label that is not one of the project's, a second one of the same annotator on a task) is
   rejected with the reason; the rest of its task still comes in.
2. The audio (no database): a task's audio is found by what Label Studio writes in
   `data.audio`: a local-files URL (`/data/local-files/?d=PATH`), an uploaded file
   (`/data/upload/1/8f3c12ab-NAME.wav`: the 8-hex prefix Label Studio adds is dropped), any URL
   or path (its path, then its file name), then the task's `file_upload` and `meta.file`. Those
   names are looked up in a zip sent with the tasks (`engine.uploads.unpack_archive`) or in a
   folder (`engine.uploads.read_manifest`, under the folder: nothing outside it is read), by
   relative path or, failing that, by a file name that only one file has.
3. `store_import` (one write transaction): adds the clips (`engine.uploads.store_clips`: the
   same checks and quota as an upload), then each answer in the order Label Studio recorded
   them, through the same engine call as an annotator's answer (`engine.live.tasks.submit_answer`:
   trust, counts, re-aggregation and the redundancy policy), at the annotation's `created_at`.

Annotators are matched to accounts named `ls-IDENT` (IDENT: the annotator's username in
listenloop's own export, else Label Studio's `completed_by`: the user's email or id), created
on first sight as annotators that cannot sign in (their password hash is no hash, so no
password verifies): imported workers. A name already taken by a real account gets a suffix
(`ls-IDENT-2`), so imported answers never land on a person's account.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from listenloop.crowd.redundancy import CANT_TELL
from listenloop.engine.accounts import USERNAME, Principal
from listenloop.engine.clips import correct_label
from listenloop.engine.config import TAG_TASKS
from listenloop.engine.errors import InvalidError
from listenloop.engine.labels import normalize_label
from listenloop.engine.labelstudio_format import DATA_KEY, Annotation, Task, parse_tasks
from listenloop.engine.live.tasks import submit_answer
from listenloop.engine.projects import load_project, require_owner
from listenloop.engine.storage import TMP_DIR, room_left
from listenloop.engine.uploads import Unpacked, UploadLimits, read_manifest, store_clips, unpack_archive
from listenloop.store.database import Database
from listenloop.store.models import Clip, Event, Project, User, utcnow
from listenloop.store.models import Task as TaskRow

IMPORT_TASKS = ("classification", "binary", "multilabel")
IMPORTED_HASH = "!labelstudio-import"  # not an argon2 hash: no password verifies against it
PREFIX = "ls-"
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-(.+)$")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.@-]")


@dataclass
class PlannedAnswer:
    """One annotation as an answer: who (their identity in the file), what, when, and whether it
    is the owner's ground truth."""

    ident: str
    value: str
    at: datetime | None
    ground_truth: bool
    task: int  # the task's index in the file


@dataclass
class PlannedTask:
    """One task: the audio names to look for, in order, and its answers."""

    index: int
    refs: list[str]
    answers: list[PlannedAnswer] = field(default_factory=list)
    name: str | None = None  # the audio it was found as


@dataclass
class Plan:
    """What an import will add, and what it rejected before touching anything."""

    total: int = 0  # tasks in the file
    tasks: list[PlannedTask] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    predictions: int = 0


def require_importable(project: Project) -> None:
    """InvalidError (422) for a project whose answers Label Studio choices cannot fill."""
    if project.task_type not in IMPORT_TASKS:
        raise InvalidError(
            f"project {project.id} is a {project.task_type} project: Label Studio tasks import into "
            f"{', '.join(IMPORT_TASKS)} projects"
        )


def audio_refs(task: Task) -> list[str]:
    """The names under which a task's audio may be found, most specific first."""
    refs: list[str] = []
    value = task.data.get(DATA_KEY)
    if not isinstance(value, str):
        value = next((v for v in task.data.values() if isinstance(v, str)), None)
    if value:
        parts = urlsplit(value)
        local = parse_qs(parts.query).get("d")
        if local:
            refs.append(local[0])
        path = unquote(parts.path)
        if path:
            refs.append(path.lstrip("/"))
            refs.extend(_names(PurePosixPath(path).name))
    if task.file_upload:
        refs.extend(_names(task.file_upload))
    meta_file = task.meta.get("file")
    if isinstance(meta_file, str) and meta_file:
        refs.append(meta_file)
    return [r for i, r in enumerate(refs) if r and r not in refs[:i]]


def _names(name: str) -> list[str]:
    """A file name, and without the `8hexdigits-` prefix Label Studio gives uploaded files."""
    match = _UPLOAD_PREFIX.match(name)
    return [name, match.group(1)] if match else [name]


def identity(annotation: Annotation) -> str:
    """Who made an annotation: listenloop's username in `meta`, else Label Studio's user."""
    meta = getattr(annotation, "meta", None)
    if isinstance(meta, dict) and isinstance(meta.get("annotator"), str) and meta["annotator"]:
        return meta["annotator"]
    who = annotation.completed_by
    if isinstance(who, dict):
        for key in ("email", "username", "id"):
            if who.get(key) not in (None, ""):
                return str(who[key])
    if who is not None:
        return str(who)
    return "unknown"


def _value(project: Project, annotation: Annotation) -> str:
    """The answer an annotation gives (InvalidError with the reason when it gives none)."""
    if annotation.was_cancelled:
        return CANT_TELL
    choices = [labels for r in annotation.result if (labels := r.labels()) is not None]
    if not choices:
        raise InvalidError("no choices result (only choices answer an audio classification task)")
    if len(choices) > 1:
        raise InvalidError(f"{len(choices)} choices results: one per annotation is what listenloop reads")
    (labels,) = choices
    if project.task_type in TAG_TASKS:
        return normalize_label(project, labels)
    if len(labels) != 1:
        raise InvalidError(f"{len(labels)} choices in a single-label project")
    return normalize_label(project, labels[0])


def _naive(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def plan_import(project: Project, tasks: list[Task]) -> Plan:
    """Every task's audio names and answers; rejected annotations with the reason."""
    require_importable(project)
    plan = Plan(total=len(tasks))
    for index, task in enumerate(tasks):
        planned = PlannedTask(index, audio_refs(task))
        if not planned.refs:
            plan.rejected.append({"task": index, "reason": "data names no audio"})
            continue
        plan.predictions += len(task.predictions)
        seen: set[str] = set()
        for k, annotation in enumerate(task.annotations):
            who = identity(annotation)
            try:
                value = _value(project, annotation)
            except InvalidError as exc:
                plan.rejected.append({"task": index, "annotation": k, "reason": str(exc)})
                continue
            key = f"{'gt:' if annotation.ground_truth else ''}{who}"
            if key in seen:
                reason = f"a second annotation by {who} (the first one counts)"
                plan.rejected.append({"task": index, "annotation": k, "reason": reason})
                continue
            seen.add(key)
            at = _naive(annotation.created_at)
            planned.answers.append(PlannedAnswer(who, value, at, annotation.ground_truth, index))
        plan.tasks.append(planned)
    return plan


def _find(refs: list[str], names: set[str], by_file: dict[str, list[str]]) -> str | None:
    for ref in refs:
        if ref in names:
            return ref
    for ref in refs:
        hits = by_file.get(PurePosixPath(ref).name, [])
        if len(hits) == 1:
            return hits[0]
    return None


def match_audio(plan: Plan, names: set[str]) -> set[str]:
    """Give each planned task the name of its audio among `names` (a zip's entries or a folder's
    files); tasks without one, or whose audio another task took, are rejected. The names used."""
    by_file: dict[str, list[str]] = {}
    for name in sorted(names):
        by_file.setdefault(PurePosixPath(name).name, []).append(name)
    used: dict[str, int] = {}
    kept = []
    for task in plan.tasks:
        name = _find(task.refs, names, by_file)
        if name is None:
            plan.rejected.append({"task": task.index, "reason": f"audio not found: {task.refs[0]}"})
            continue
        if name in used:
            reason = f"audio {name} is task {used[name]}'s already"
            plan.rejected.append({"task": task.index, "reason": reason})
            continue
        used[name] = task.index
        task.name = name
        kept.append(task)
    plan.tasks = kept
    return set(used)


def folder_files(root: Path) -> set[str]:
    """Every file under `root`, as paths relative to it (links that lead outside are left out)."""
    root = root.resolve()
    out = set()
    for path in root.rglob("*"):
        try:
            if path.is_file() and path.resolve().is_relative_to(root):
                out.add(path.relative_to(root).as_posix())
        except OSError:
            continue
    return out


def _account(session: Session, ident: str, cache: dict[str, Principal]) -> Principal:
    """The imported worker for `ident`, made on first sight (an annotator who cannot sign in)."""
    if ident in cache:
        return cache[ident]
    clean = _NOT_NAME.sub("_", ident)
    base = (clean if clean.startswith(PREFIX) else PREFIX + clean)[:60]  # an imported worker stays one
    for n in range(1, 1000):
        name = base if n == 1 else f"{base}-{n}"
        user = session.scalar(select(User).where(User.username == name))
        if user is None:
            user = User(username=name, password_hash=IMPORTED_HASH, role="annotator")
            session.add(user)
            session.flush()
        if user.password_hash == IMPORTED_HASH:
            assert USERNAME.fullmatch(name)
            cache[ident] = Principal(user.id, user.username, user.role)
            return cache[ident]
    raise InvalidError(f"no free account name for annotator {ident!r}")


def store_import(
    session: Session,
    project: Project,
    plan: Plan,
    unpacked: Unpacked,
    data_dir: Path,
    who: Principal,
    *,
    quota: int | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Add the planned tasks' clips and answers to `project` (in the caller's transaction).

    Returns `{tasks, clips_added, answers, cant_tell, expert_labels, annotators, predictions_ignored,
    rejected: [{task, annotation?, reason}], audio_rejected: [{file, reason}]}`.
    """
    require_importable(project)
    now = now or utcnow()
    wanted = {t.name for t in plan.tasks}
    unpacked.candidates = [c for c in unpacked.candidates if c.name in wanted]
    rejected = list(plan.rejected)
    audio_rejected: list[dict[str, str]] = []
    if unpacked.candidates:
        stored = store_clips(session, project, unpacked, data_dir, user_id=who.id, quota=quota)
        audio_rejected = stored["rejected"]
    else:
        audio_rejected = list(unpacked.rejected)
    session.flush()
    refused = {r["file"]: r["reason"] for r in audio_rejected}
    fresh = {c.name for c in unpacked.candidates} - set(refused)
    ids = dict(
        session.execute(
            select(Clip.file_name, Clip.id).where(Clip.project_id == project.id, Clip.file_name.in_(fresh))
        ).all()
    )
    clip_of: dict[int, int] = {}
    for task in plan.tasks:
        if task.name in ids:
            clip_of[task.index] = ids[task.name]
        else:
            reason = refused.get(task.name or "", "audio not found in the upload")
            rejected.append({"task": task.index, "reason": f"audio {task.name}: {reason}"})
    answers = [a for t in plan.tasks if t.index in clip_of for a in t.answers]
    answers.sort(key=lambda a: (a.at or now, a.task))
    people: dict[str, Principal] = {}
    counts = {"answers": 0, "cant_tell": 0, "expert_labels": 0}
    for answer in answers:
        clip_id = clip_of[answer.task]
        if answer.ground_truth:
            if answer.value == CANT_TELL:
                rejected.append({"task": answer.task, "reason": "a skipped ground-truth annotation"})
                continue
            correct_label(session, project, who, clip_id, answer.value, now=answer.at or now)
            counts["expert_labels"] += 1
            continue
        worker = _account(session, answer.ident, people)
        at = answer.at or now
        row = TaskRow(
            project_id=project.id,
            clip_id=clip_id,
            annotator_id=worker.id,
            kind="regular",
            created_at=at,
            leased_until=at + timedelta(minutes=1),
        )
        session.add(row)
        session.flush()
        submit_answer(session, row.id, worker, answer.value, now=at)
        counts["answers"] += 1
        counts["cant_tell"] += answer.value == CANT_TELL
    result = {
        "tasks": plan.total,
        "clips_added": len(clip_of),
        **counts,
        "annotators": sorted(p.username for p in people.values()),
        "predictions_ignored": plan.predictions,
        "rejected": sorted(rejected, key=lambda r: (r["task"], r.get("annotation", -1))),
        "audio_rejected": audio_rejected,
    }
    session.add(
        Event(
            project_id=project.id,
            user_id=who.id,
            kind="labelstudio_imported",
            data={k: v for k, v in result.items() if k not in ("rejected", "audio_rejected", "annotators")},
            created_at=now,
        )
    )
    session.flush()
    return result


def import_labelstudio(
    db: Database,
    project_id: int,
    who: Principal,
    tasks_json: bytes,
    data_dir: Path,
    *,
    archive: Path | IO[bytes] | None = None,
    folder: Path | None = None,
    limits: UploadLimits | None = None,
) -> dict[str, Any]:
    """The whole import (`store_import`'s report): the tasks' JSON, and their audio in a zip
    (`archive`) or under a folder (`folder`). NotFoundError, ForbiddenError (not the project's
    owner) or InvalidError (not Label Studio tasks, a project of another kind, no audio source)
    before anything is stored."""
    if (archive is None) == (folder is None):
        raise InvalidError("send the audio as a zip (archive) or name the folder it is under")
    limits = limits or UploadLimits()
    tasks = parse_tasks(tasks_json)
    with db.read() as session:
        project = load_project(session, project_id)
        require_owner(project, who)
        plan = plan_import(project, tasks)
        room = room_left(project, limits.project_quota_bytes)
    tmp = data_dir / TMP_DIR
    if folder is not None:
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise InvalidError(f"{folder}: not a folder")
        needed = match_audio(plan, folder_files(root))
        unpacked = read_manifest(sorted(needed), root, tmp, limits, room)
    else:
        unpacked = unpack_archive(archive, tmp, limits, room)  # type: ignore[arg-type]
        match_audio(plan, {c.name for c in unpacked.candidates})
    try:
        with db.write() as session:
            project = load_project(session, project_id)
            return store_import(
                session, project, plan, unpacked, data_dir, who, quota=limits.project_quota_bytes
            )
    finally:
        unpacked.cleanup()
