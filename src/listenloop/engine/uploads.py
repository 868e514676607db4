"""Safe intake of uploaded zip archives of audio, stored content-addressed.

Two steps, so that the slow one holds no database lock:
1. `unpack_archive` (no database; run it off the event loop): refuses the whole archive when
   it is not a zip, holds no file, names a path outside itself (zip-slip, absolute paths),
   expands too much (a zip bomb: one entry's ratio, the whole archive's ratio to its size on
   disk, or the total size), would not fit in the project's storage quota, or lies about an
   entry's size. The central directory is checked first, and the same bounds are counted again
   on the bytes actually extracted (headers can lie). Then it decodes every entry with
   `listenloop.audio.io.load_audio` and rejects, one by one, those that are not audio (text,
   empty, truncated). Nothing is written outside a temporary folder.
2. `store_clips` (one short write transaction): takes the accepted bytes from the project's
   storage quota (all or nothing, 413 when they do not fit), moves accepted files to
   `DATA/audio/ab/abcdef....ext` (named by their SHA-256) and adds the clips.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import soundfile as sf
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from listenloop.audio.io import AUDIO_EXTENSIONS, load_audio
from listenloop.engine.errors import InvalidError, TooLargeError
from listenloop.engine.labels import normalize_label
from listenloop.engine.storage import quota_error, quota_reason
from listenloop.errors import AudioError, ListenloopError
from listenloop.settings import Settings
from listenloop.settings import parse_size as parse_size  # where the server's options read sizes
from listenloop.store.models import Clip, Event, Project, utcnow

CHUNK = 1 << 20
MIN_DURATION = 0.05  # seconds: shorter than this is nothing a listener can label
_DRIVE = re.compile(r"^[A-Za-z]:")
_SHORT_CHUNK = re.compile(r"^(\w+)\s*: (\d+) \(should be (\d+)\)", re.MULTILINE)
DEFAULT_PROJECT_QUOTA = 20 << 30


@dataclass(frozen=True)
class UploadLimits:
    """Upload bounds: request body, unpacked total and per entry, expansion ratio, file count,
    and the storage quota of each project (None: none)."""

    max_upload_bytes: int = 1 << 30
    max_unpacked_bytes: int = 4 << 30
    max_entry_bytes: int = 1 << 30
    # uncompressed / compressed size, of one entry and of the whole archive (uncompressed total /
    # the archive's size on disk): audio barely compresses, a zip bomb expands 1,000 times
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 1 << 20  # an entry or archive that expands to less is not judged by ratio
    max_files: int = 100_000
    project_quota_bytes: int | None = DEFAULT_PROJECT_QUOTA

    @classmethod
    def from_env(cls) -> UploadLimits:
        """The defaults, with the upload size and project quota of the settings (LISTENLOOP_MAX_UPLOAD,
        LISTENLOOP_PROJECT_QUOTA: e.g. 20G; 0: no quota)."""
        try:
            s = Settings.from_env()
        except ListenloopError as exc:
            raise InvalidError(str(exc)) from None
        return cls(max_upload_bytes=s.max_upload, project_quota_bytes=s.project_quota)


@dataclass
class Candidate:
    """An archive entry that decoded as audio, waiting in the temporary folder."""

    name: str
    sha256: str
    tmp_path: Path
    ext: str
    duration: float
    sample_rate: int
    size: int
    recording: str | None = None  # events projects: the long file this segment was cut from
    onset: float | None = None  # and where in it the segment starts, seconds


@dataclass
class Unpacked:
    """What `unpack_archive` found: decodable entries, rejected ones, and its temporary folder."""

    candidates: list[Candidate] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    workdir: Path | None = None

    def cleanup(self) -> None:
        """Remove the temporary folder and whatever is left in it."""
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


class ArchiveRejectedError(InvalidError):
    """The whole archive is refused (nothing from it is stored)."""

    def __init__(self, reason: str, rejected: list[dict[str, str]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rejected = rejected or []


class ArchiveTooLargeError(TooLargeError):
    """The archive expands beyond the size limit (413)."""


def entry_name(raw: str) -> str:
    """The clean relative path of an archive entry; ArchiveRejectedError for one that would escape."""
    name = raw.replace("\\", "/")
    if name.startswith("/") or _DRIVE.match(name):
        raise ArchiveRejectedError(
            f"entry {raw!r} has an absolute path", [{"file": raw, "reason": "absolute path"}]
        )
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveRejectedError(
            f"entry {raw!r} points outside the archive (zip-slip)", [{"file": raw, "reason": "path with .."}]
        )
    if any(ord(ch) < 32 for ch in name):
        raise ArchiveRejectedError(f"entry {raw!r} has control characters in its name")
    return "/".join(parts)


def _ignored(name: str) -> bool:
    """macOS resource forks and hidden files that archivers add: skipped silently."""
    path = PurePosixPath(name)
    return (
        path.parts[0] == "__MACOSX" or path.name.startswith(".") or path.name in ("Thumbs.db", "desktop.ini")
    )


class _Budget:
    """The bytes an archive may expand to, counted as they are extracted (its headers can lie):
    the total limit, the whole-archive ratio to its size on disk, and the project's room."""

    def __init__(self, limits: UploadLimits, archive_size: int, room: int | None) -> None:
        self.limits, self.archive_size, self.room = limits, archive_size, room
        self.ratio_cap = max(limits.ratio_floor_bytes, int(limits.max_ratio * archive_size))
        self.used = 0
        self.audio = 0

    def check(self, total: int, audio: int) -> None:
        """Raise when `total` bytes (of which `audio` from audio entries) would be too much."""
        limits = self.limits
        if total > limits.max_unpacked_bytes:
            raise ArchiveTooLargeError(
                f"the archive expands to more than {total} bytes (limit {limits.max_unpacked_bytes})"
            )
        if total > self.ratio_cap:
            ratio = total / max(self.archive_size, 1)
            raise ArchiveRejectedError(
                f"the archive expands {ratio:.0f} times its size ({self.archive_size} bytes to at least "
                f"{total}; limit {limits.max_ratio:g} times): a zip bomb"
            )
        if self.room is not None and audio > self.room:
            raise ArchiveQuotaError(audio, self.room)

    def take(self, n: int) -> None:
        """Count `n` more extracted bytes of an audio entry."""
        self.used += n
        self.audio += n
        self.check(self.used, self.audio)


class ArchiveQuotaError(ArchiveTooLargeError):
    """The archive's audio would not fit in the project's storage quota (413)."""

    def __init__(self, adding: int, room: int) -> None:
        super().__init__(quota_reason(adding, room))


def _check_infos(
    infos: list[zipfile.ZipInfo], limits: UploadLimits, budget: _Budget
) -> list[tuple[zipfile.ZipInfo, str]]:
    """The entries to read, after the archive-level checks on what the central directory declares
    (paths, count, sizes, each entry's ratio, the whole archive's ratio, the project's room)."""
    entries: list[tuple[zipfile.ZipInfo, str]] = []
    seen: set[str] = set()
    total = audio = 0
    for info in infos:
        name = entry_name(info.filename)
        if info.is_dir() or not name or _ignored(name):
            continue
        if name in seen:
            raise ArchiveRejectedError(f"entry {name!r} occurs twice in the archive")
        seen.add(name)
        if info.flag_bits & 0x1:
            raise ArchiveRejectedError(
                f"entry {name!r} is encrypted", [{"file": name, "reason": "encrypted"}]
            )
        if info.file_size > limits.max_entry_bytes:
            raise ArchiveTooLargeError(
                f"entry {name!r} expands to {info.file_size} bytes (limit {limits.max_entry_bytes})"
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_floor_bytes and ratio > limits.max_ratio:
            raise ArchiveRejectedError(
                f"entry {name!r} expands {ratio:.0f} times (limit {limits.max_ratio:g}): a zip bomb",
                [{"file": name, "reason": f"expansion ratio {ratio:.0f}"}],
            )
        total += info.file_size
        if PurePosixPath(name).suffix.lower() in AUDIO_EXTENSIONS:
            audio += info.file_size
        entries.append((info, name))
    if len(entries) > limits.max_files:
        raise ArchiveRejectedError(f"the archive holds {len(entries)} files (limit {limits.max_files})")
    budget.check(total, audio)
    if not entries:
        raise ArchiveRejectedError("the archive holds no files")
    return entries


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, budget: _Budget) -> str:
    """Copy one entry to `dest`, never more bytes than its header declares nor than the archive's
    budget allows; returns its SHA-256."""
    digest = hashlib.sha256()
    written = 0
    with archive.open(info) as src, open(dest, "wb") as out:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > info.file_size:
                raise ArchiveRejectedError(f"entry {info.filename!r} is larger than its header says: refused")
            budget.take(len(chunk))
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def truncation(path: Path) -> str | None:
    """Why a file that decodes is still incomplete (its header promises more data than it holds)."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            log = f.extra_info
    except (sf.LibsndfileError, RuntimeError, ValueError):
        return None
    for chunk, declared, actual in _SHORT_CHUNK.findall(log):
        if chunk.lower() == "data" and int(actual) < int(declared):
            return f"truncated: the header declares {declared} bytes of audio, the file holds {actual}"
    return None


def _decode_reason(exc: AudioError, tmp: Path) -> str:
    """AudioError's reason without the temporary path."""
    return str(exc).replace(f"{tmp}: ", "").replace(str(tmp), "file")


def _admit(result: Unpacked, name: str, tmp: Path, sha: str, ext: str, size: int) -> None:
    """Decode one copied file: a candidate when it is usable audio, else a rejection with the reason."""
    problem = "empty file" if size == 0 else None
    duration, sr = 0.0, 0
    if problem is None:
        try:
            signal, sr = load_audio(tmp)
        except AudioError as exc:
            problem = _decode_reason(exc, tmp)
        else:
            duration = len(signal) / sr
            problem = truncation(tmp)
            if problem is None and duration < MIN_DURATION:
                problem = f"too short to annotate ({duration * 1000:.0f} ms)"
    if problem is not None:
        tmp.unlink(missing_ok=True)
        result.rejected.append({"file": name, "reason": problem})
        return
    result.candidates.append(Candidate(name, sha, tmp, ext, duration, sr, size))


TAIL_S = 1e-3  # a recording's remainder past the last hop shorter than this gets no segment of its own


def segment_onsets(duration: float, segment: float, hop: float) -> list[float]:
    """Onsets of the `segment`-second annotation segments of a `duration`-second recording, one
    every `hop` seconds, plus a final one ending at the recording's end (onset `duration -
    segment`) where the hops leave a remainder, so that every second of the file is in a
    segment (a recording shorter than one segment is one segment of its own length)."""
    last = max(0, math.floor((duration - segment) / hop + 1e-9))
    onsets = [round(k * hop, 6) for k in range(last + 1)]
    if onsets[-1] + segment < duration - TAIL_S:
        onsets.append(round(duration - segment, 3))
    return onsets


def segment_name(recording: str, onset: float) -> str:
    """A segment clip's name, `NAME@ONSETs` (onset to the millisecond, no trailing zeros)."""
    return f"{recording}@{f'{onset:.3f}'.rstrip('0').rstrip('.')}s"


def cut_segments(unpacked: Unpacked, segment: float, hop: float) -> Unpacked:
    """An events project's upload: each decoded recording becomes its overlapping annotation
    segments (`segment_onsets`), each written as a 16-bit WAV in the same temporary folder and
    named `NAME@ONSETs`; the long file itself is not kept. Run it off the event loop."""
    out = Unpacked(rejected=list(unpacked.rejected), workdir=unpacked.workdir)
    for cand in unpacked.candidates:
        signal, sr = load_audio(cand.tmp_path)
        cand.tmp_path.unlink(missing_ok=True)
        width = round(segment * sr)
        for onset in segment_onsets(cand.duration, segment, hop):
            start = round(onset * sr)
            part = signal[start : start + width]
            tmp = cand.tmp_path.with_name(f"{cand.tmp_path.stem}-{start}.wav")
            sf.write(tmp, part, sr, subtype="PCM_16", format="WAV")
            digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
            out.candidates.append(
                Candidate(
                    segment_name(cand.name, onset),
                    digest,
                    tmp,
                    ".wav",
                    len(part) / sr,
                    sr,
                    tmp.stat().st_size,
                    recording=cand.name,
                    onset=onset,
                )
            )
    return out


def _new_workdir(tmp_root: Path) -> Unpacked:
    tmp_root.mkdir(parents=True, exist_ok=True)
    return Unpacked(workdir=Path(tempfile.mkdtemp(prefix="upload-", dir=tmp_root)))


def _size_on_disk(source: Path | IO[bytes]) -> int:
    """Bytes of the archive (a path, or a seekable file left where it was)."""
    if isinstance(source, str | os.PathLike):
        return os.stat(source).st_size
    here = source.tell()
    size = source.seek(0, os.SEEK_END)
    source.seek(here)
    return size


def unpack_archive(
    zip_path: Path | IO[bytes],
    tmp_root: Path,
    limits: UploadLimits | None = None,
    room: int | None = None,
) -> Unpacked:
    """Check and decode every entry of the zip at `zip_path` (a path or a seekable file) into a
    folder under `tmp_root`; `room`: the bytes of audio the project may still store (None: no bound).

    ArchiveRejectedError / ArchiveTooLargeError refuse the whole archive (the temporary folder is removed);
    otherwise entries that are not audio are listed in `rejected` with the reason.
    """
    limits = limits or UploadLimits()
    result = _new_workdir(tmp_root)
    try:
        try:
            budget = _Budget(limits, _size_on_disk(zip_path), room)
            archive = zipfile.ZipFile(zip_path)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise ArchiveRejectedError(f"not a zip archive ({exc})") from None
        with archive:
            entries = _check_infos(archive.infolist(), limits, budget)
            for i, (info, name) in enumerate(entries):
                ext = PurePosixPath(name).suffix.lower()
                if ext not in AUDIO_EXTENSIONS:
                    result.rejected.append(
                        {"file": name, "reason": f"not an audio file name ({ext or 'no extension'})"}
                    )
                    continue
                tmp = result.workdir / f"{i}{ext}"  # type: ignore[operator]
                try:
                    sha = _extract(archive, info, tmp, budget)
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as exc:
                    tmp.unlink(missing_ok=True)
                    result.rejected.append({"file": name, "reason": f"damaged in the archive ({exc})"})
                    continue
                _admit(result, name, tmp, sha, ext, info.file_size)
    except BaseException:
        result.cleanup()
        raise
    return result


def read_manifest(
    files: list[str],
    import_root: Path | None,
    tmp_root: Path,
    limits: UploadLimits | None = None,
    room: int | None = None,
) -> Unpacked:
    """Copy and decode the audio files a manifest lists, by path under the server's import root.

    For pools too big to upload as a zip: the files already sit on storage the server can read
    (`listenloop serve --import-root DIR`). Paths are relative to that root; an absolute
    path, `..` or a link that leads outside it refuses the whole manifest (ArchiveRejectedError,
    nothing stored); a missing, unreadable or non-audio file is rejected with the reason. Files
    beyond `room` (the bytes the project may still store) refuse the whole manifest (413).
    """
    if import_root is None:
        raise ArchiveRejectedError(
            "manifest uploads are off on this server: start it with --import-root DIR (the folder the "
            "manifest's paths are relative to), or upload a zip"
        )
    limits = limits or UploadLimits()
    root = Path(import_root).resolve()
    if len(files) > limits.max_files:
        raise ArchiveRejectedError(f"the manifest lists {len(files)} files (limit {limits.max_files})")
    names = [entry_name(f) for f in files]
    for raw, name in zip(files, names, strict=True):
        if not (root / name).resolve().is_relative_to(root):
            raise ArchiveRejectedError(
                f"{raw!r} leads outside the import root", [{"file": raw, "reason": "outside the import root"}]
            )
    result = _new_workdir(tmp_root)
    copied = 0
    try:
        for i, name in enumerate(names):
            source = root / name
            ext = PurePosixPath(name).suffix.lower()
            if ext not in AUDIO_EXTENSIONS:
                result.rejected.append(
                    {"file": name, "reason": f"not an audio file name ({ext or 'no extension'})"}
                )
                continue
            try:  # a name over the system's limits (ENAMETOOLONG) is a rejected file, not a crash
                size = source.stat().st_size if source.is_file() else None
            except OSError as exc:
                result.rejected.append({"file": name[:200], "reason": f"unreadable ({exc.strerror or exc})"})
                continue
            if size is None:
                result.rejected.append({"file": name, "reason": "no such file under the import root"})
                continue
            if size > limits.max_entry_bytes:
                result.rejected.append(
                    {"file": name, "reason": f"{size} bytes (limit {limits.max_entry_bytes})"}
                )
                continue
            copied += size
            if room is not None and copied > room:
                raise ArchiveQuotaError(copied, room)
            tmp = result.workdir / f"{i}{ext}"  # type: ignore[operator]
            try:
                sha = _copy_hashed(source, tmp)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                result.rejected.append({"file": name, "reason": f"unreadable ({exc.strerror or exc})"})
                continue
            _admit(result, name, tmp, sha, ext, size)
    except BaseException:
        result.cleanup()
        raise
    return result


def _copy_hashed(source: Path, dest: Path) -> str:
    """Copy `source` to `dest` in chunks; returns the SHA-256 of what was copied."""
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(dest, "wb") as out:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def audio_path(sha256: str, ext: str) -> str:
    """Where a clip's audio lives, relative to the data folder."""
    return f"audio/{sha256[:2]}/{sha256}{ext}"


def _match(names: set[str], wanted: str) -> str | None:
    """The clip name that a labels row means: the same path, or the only one with that file name."""
    if wanted in names:
        return wanted
    hits = [n for n in names if PurePosixPath(n).name == wanted]
    return hits[0] if len(hits) == 1 else None


def store_clips(
    session: Session,
    project: Project,
    unpacked: Unpacked,
    data_dir: Path,
    *,
    user_id: int | None = None,
    labels: dict[str, str] | None = None,
    rng: random.Random | None = None,
    quota: int | None = None,
) -> dict[str, Any]:
    """Add the decoded entries to `project`: `{added, rejected: [{file, reason}]}`.

    Names or contents already in the project are rejected as duplicates. Clips with a label
    from `labels` (file,label) join the labelled seed set (status done); the rest are queued
    in random order (rank). Nothing is added when nothing is acceptable. The accepted audio
    counts toward the project's `stored_bytes`; QuotaExceededError (413, nothing stored) when
    that would pass `quota` (checked in the same UPDATE, so concurrent uploads cannot both fit).
    """
    rng = rng or random.Random()
    rejected = list(unpacked.rejected)
    rows = session.execute(select(Clip.file_name, Clip.sha256).where(Clip.project_id == project.id))
    names, hashes = set(), set()
    for name, sha in rows:
        names.add(name)
        hashes.add(sha)
    accepted: list[Candidate] = []
    for cand in unpacked.candidates:
        if cand.name in names:
            rejected.append({"file": cand.name, "reason": "a clip with this name is already in the project"})
        elif cand.sha256 in hashes and cand.recording is None:  # two segments may sound alike
            rejected.append({"file": cand.name, "reason": "the same audio is already in the project"})
        else:
            names.add(cand.name)
            hashes.add(cand.sha256)
            accepted.append(cand)
    seeds: dict[str, str] = {}
    for wanted, value in (labels or {}).items():
        target = _match({c.name for c in accepted}, wanted)
        if target is None:
            rejected.append({"file": wanted, "reason": "labels: no such clip in this upload"})
            continue
        try:
            seeds[target] = normalize_label(project, value)
        except InvalidError as exc:
            rejected.append({"file": wanted, "reason": f"labels: {exc}"})
    _take_room(session, project, sum(c.size for c in accepted), quota)
    now = utcnow()
    for cand in accepted:
        rel = audio_path(cand.sha256, cand.ext)
        dest = data_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            cand.tmp_path.unlink(missing_ok=True)
        else:
            os.replace(cand.tmp_path, dest)
        seed = seeds.get(cand.name)
        session.add(
            Clip(
                project_id=project.id,
                file_name=cand.name,
                sha256=cand.sha256,
                path=rel,
                size_bytes=cand.size,
                duration=cand.duration,
                sample_rate=cand.sample_rate,
                # stream mode: a learning round judges each arrival before anyone hears it
                status="done" if seed is not None else ("pool" if project.mode == "stream" else "queued"),
                rank=rng.random(),
                seed_label=seed,
                label=seed,
                confidence=1.0 if seed is not None else None,
                recording=cand.recording,
                onset=cand.onset,
                created_at=now,
                updated_at=now,
            )
        )
    project.clips_count = Project.clips_count + len(accepted)  # in SQL: concurrent uploads add up
    project.labels_count = Project.labels_count + len(seeds)
    session.add(
        Event(
            project_id=project.id,
            user_id=user_id,
            kind="clips_uploaded",
            data={"added": len(accepted), "rejected": len(rejected), "seed_labels": len(seeds)},
        )
    )
    return {"added": len(accepted), "rejected": rejected}


def _take_room(session: Session, project: Project, adding: int, quota: int | None) -> None:
    """Add `adding` bytes to the project's storage use, or QuotaExceededError past `quota`."""
    if not adding:
        return
    stmt = update(Project).where(Project.id == project.id)
    if quota is not None:
        stmt = stmt.where(Project.stored_bytes + adding <= quota)
    taken = session.execute(
        stmt.values(stored_bytes=Project.stored_bytes + adding).execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:
        used = session.scalar(select(Project.stored_bytes).where(Project.id == project.id)) or 0
        raise quota_error(project.id, used, adding, quota or 0)


def mark_gold(
    session: Session, project: Project, gold: dict[str, str], *, user_id: int | None = None
) -> dict[str, Any]:
    """Turn clips into control questions with a known answer: `{marked, rejected: [{file, reason}]}`.

    A control clip leaves the regular queue; annotators get it at the project's control rate.
    """
    clips = {c.file_name: c for c in session.scalars(select(Clip).where(Clip.project_id == project.id))}
    marked = newly = 0
    rejected: list[dict[str, str]] = []
    for wanted, value in gold.items():
        target = _match(set(clips), wanted)
        if target is None:
            rejected.append({"file": wanted, "reason": "no clip of this name in the project"})
            continue
        try:
            label = normalize_label(project, value)
        except InvalidError as exc:
            rejected.append({"file": wanted, "reason": str(exc)})
            continue
        clip = clips[target]
        newly += not clip.is_gold
        clip.is_gold = True
        clip.gold_label = label
        clip.updated_at = utcnow()
        marked += 1
    project.labels_count = Project.labels_count + newly
    session.add(
        Event(
            project_id=project.id,
            user_id=user_id,
            kind="gold_uploaded",
            data={"marked": marked, "rejected": len(rejected)},
        )
    )
    return {"marked": marked, "rejected": rejected}
