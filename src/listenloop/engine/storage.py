"""The data folder a server owns: its start-up clean-up of what a crash left, and projects'
storage use against their quota.

A server killed mid-upload (kill -9, power loss) can leave audio in the content-addressed store
that no clip refers to (moved there just before the transaction that would have added its clip),
upload folders under `tmp/`, and half-written cache files (spectrograms, features). Nothing
else is at risk: the database's own transactions are atomic. `claim_data_folder` removes those
leftovers once, before the server serves (in `listenloop serve`'s parent, before any worker or
the learning process starts), and only while no other server uses the same data folder: it takes
an exclusive lock on `DATA/.listenloop.lock` for the clean-up and keeps a shared one while the
server runs, so a second server started on the same folder cleans nothing (it could not tell
a crash's leftovers from the first one's upload in flight).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select, update

from listenloop.engine.errors import TooLargeError
from listenloop.store.database import Database
from listenloop.store.models import Clip, Project

LOCK_NAME = ".listenloop.lock"
TMP_DIR = "tmp"  # upload work folders (engine/uploads.py)
# Store files, as engine/uploads.audio_path and engine/media.spectrogram_path name them: only
# such audio files are ever removed (when no clip refers to them); any other name among the
# spectrograms is the temporary file of an interrupted write.
_AUDIO_FILE = re.compile(r"[0-9a-f]{64}\.[a-z0-9]{1,10}", re.ASCII)
_SPECTROGRAM_FILE = re.compile(r"[0-9a-f]{64}\.png", re.ASCII)
# features/cache.py writes `.{key[:8]}.XXXX.tmp`, features/extraction.py `tables/.table.XXXX.npy`
_FEATURE_TEMP = re.compile(r"\.[^/]*\.tmp|\.table\.[^/]*\.npy")
_BATCH = 500


class QuotaExceededError(TooLargeError):
    """An upload would take a project over its storage quota (413; nothing is stored)."""


def quota_reason(adding: int, left: int) -> str:
    """Why an upload of `adding` bytes of audio is refused when the quota has `left` bytes."""
    return (
        f"this upload's audio takes {human_bytes(adding)} and the project's storage quota has "
        f"{human_bytes(left)} left. Nothing was stored: upload fewer files, or ask the server's "
        "administrator for a larger quota (listenloop serve --project-quota)"
    )


def quota_error(project_id: int, used: int, adding: int, quota: int) -> QuotaExceededError:
    """The refusal of an upload that would take the project past `quota` bytes."""
    head = f"project {project_id} stores {human_bytes(used)} of its {human_bytes(quota)} quota: "
    return QuotaExceededError(head + quota_reason(adding, max(quota - used, 0)))


def human_bytes(n: int) -> str:
    """`n` bytes for people: 512 bytes, 7.0 kB, 20.0 MB, 1.5 GB (powers of 1000)."""
    if n < 1000:
        return f"{n} bytes"
    for unit, scale in (("kB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if n < scale * 1000 or unit == "GB":
            return f"{n / scale:,.1f} {unit}"
    raise AssertionError  # unreachable


def room_left(project: Project, quota: int | None) -> int | None:
    """Bytes the project may still store (None: no quota)."""
    return None if quota is None else max(quota - (project.stored_bytes or 0), 0)


def storage_use(project: Project, quota: int | None) -> dict[str, int | None]:
    """`{used_bytes, quota_bytes, left_bytes}` of the project (for its status)."""
    used = project.stored_bytes or 0
    return {"used_bytes": used, "quota_bytes": quota, "left_bytes": room_left(project, quota)}


@dataclass
class Cleaned:
    """What `claim_data_folder` removed (and filled in); `skipped` says why it cleaned nothing."""

    orphan_audio: int = 0
    orphan_bytes: int = 0
    temp_entries: int = 0
    sizes_filled: int = 0
    skipped: str | None = None
    removed: list[str] = field(default_factory=list)

    def summary(self) -> str | None:
        """One line for the start-up log, or None when there was nothing to do."""
        if self.skipped:
            return f"data folder not cleaned: {self.skipped}"
        if not (self.orphan_audio or self.temp_entries or self.sizes_filled):
            return None
        parts = []
        if self.orphan_audio:
            parts.append(
                f"{self.orphan_audio} audio files no clip refers to ({human_bytes(self.orphan_bytes)})"
            )
        if self.temp_entries:
            parts.append(f"{self.temp_entries} temporary files or folders")
        text = "removed what an interrupted run left: " + ", ".join(parts) if parts else ""
        if self.sizes_filled:
            text += ("; " if text else "") + f"counted the storage of {self.sizes_filled} older clips"
        return text


class DataFolderLock:
    """A lock on the data folder held for a server's life (shared; exclusive while cleaning)."""

    def __init__(self, data_dir: Path) -> None:
        self._fd: int | None = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)

    def try_exclusive(self) -> bool:
        """Take the lock alone, or False at once when another server holds it."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # type: ignore[arg-type]
        except BlockingIOError:
            return False
        return True

    def share(self) -> None:
        """Hold the lock shared: other servers may start, none of them cleans."""
        fcntl.flock(self._fd, fcntl.LOCK_SH)  # type: ignore[arg-type]

    def release(self) -> None:
        """Let go (the server stops); closing the file releases the lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def claim_data_folder(db: Database, data_dir: Path) -> tuple[DataFolderLock, Cleaned]:
    """Lock the data folder for this server and, when no other server uses it, clean it.

    Call it once per server before serving, in the process that outlives the workers; keep the
    lock until the server stops (`release`).
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = DataFolderLock(data_dir)
    cleaned = Cleaned()
    if not lock.try_exclusive():
        lock.share()
        cleaned.skipped = "another server is using it"
        return lock, cleaned
    try:
        _clean_temporary(data_dir, cleaned)
        _clean_orphan_audio(db, data_dir, cleaned)
        _fill_sizes(db, data_dir, cleaned)
    finally:
        lock.share()
    return lock, cleaned


def _remove(path: Path, cleaned: Cleaned) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    cleaned.temp_entries += 1
    cleaned.removed.append(str(path))


def _clean_temporary(data_dir: Path, cleaned: Cleaned) -> None:
    """Upload work folders, and the temporary files of interrupted cache writes."""
    tmp = data_dir / TMP_DIR
    if tmp.is_dir():
        for entry in tmp.iterdir():
            _remove(entry, cleaned)
    spectrograms = data_dir / "spectrograms"  # media.render_spectrogram's tmpXXXX.png
    if spectrograms.is_dir():
        for bucket in spectrograms.iterdir():
            if bucket.is_dir():
                for entry in bucket.iterdir():
                    if entry.is_file() and not _SPECTROGRAM_FILE.fullmatch(entry.name):
                        _remove(entry, cleaned)
    features = data_dir / "features"
    if features.is_dir():
        for dirpath, _, files in os.walk(features):
            for name in files:
                if _FEATURE_TEMP.fullmatch(name):
                    _remove(Path(dirpath) / name, cleaned)


def _clean_orphan_audio(db: Database, data_dir: Path, cleaned: Cleaned) -> None:
    """Remove store files that no clip refers to (by path: a clip keeps its file, whatever
    project it is in), looked up in batches by content hash."""
    root = data_dir / "audio"
    if not root.is_dir():
        return
    for bucket in sorted(root.iterdir()):
        if not bucket.is_dir():
            continue
        files = sorted(p for p in bucket.iterdir() if _AUDIO_FILE.fullmatch(p.name))
        for start in range(0, len(files), _BATCH):
            batch = files[start : start + _BATCH]
            shas = sorted({p.name.split(".", 1)[0] for p in batch})
            with db.read() as session:
                used = set(session.scalars(select(Clip.path).where(Clip.sha256.in_(shas))))
            for path in batch:
                if f"audio/{bucket.name}/{path.name}" in used:
                    continue
                size = path.stat().st_size
                path.unlink(missing_ok=True)
                cleaned.orphan_audio += 1
                cleaned.orphan_bytes += size
                cleaned.removed.append(str(path))


def _fill_sizes(db: Database, data_dir: Path, cleaned: Cleaned) -> None:
    """Sizes of clips stored before they were counted, and their projects' totals recounted."""
    with db.read() as session:
        missing = session.execute(select(Clip.id, Clip.path).where(Clip.size_bytes.is_(None))).all()
    if not missing:
        return
    for start in range(0, len(missing), _BATCH):
        sizes = [
            {"id": clip_id, "size_bytes": _size(data_dir / rel)}
            for clip_id, rel in missing[start : start + _BATCH]
        ]
        with db.write() as session:
            session.execute(update(Clip), sizes)  # one UPDATE by primary key, many rows
    cleaned.sizes_filled = len(missing)
    with db.write() as session:
        totals = (  # audio in the store only: a bulk import's files referenced in place take no quota
            select(func.coalesce(func.sum(Clip.size_bytes), 0))
            .where(Clip.project_id == Project.id, Clip.path.like("audio/%"))
            .scalar_subquery()
        )
        session.execute(update(Project).values(stored_bytes=totals))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # its audio is missing: it takes no room
