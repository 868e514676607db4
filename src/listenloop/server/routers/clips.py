"""Clips: zip or manifest uploads (with optional seed labels), control questions, audio and spectrograms,
and the owner's clip browser (filtered pages, one clip, expert corrections)."""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, UploadFile, status
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from listenloop.engine import clips as browser
from listenloop.engine import projects as ops
from listenloop.engine.errors import ForbiddenError, InvalidError, NotFoundError
from listenloop.engine.labels import read_label_csv
from listenloop.engine.lifecycle import require_writable
from listenloop.engine.live.media import render_spectrogram, spectrogram_path
from listenloop.engine.storage import TMP_DIR, room_left
from listenloop.engine.uploads import (
    Unpacked,
    UploadLimits,
    cut_segments,
    mark_gold,
    read_manifest,
    store_clips,
    unpack_archive,
)
from listenloop.server.deps import DB, MAX_ID, ClipId, DataDir, Limits, ProjectId, User
from listenloop.server.json_body import StrictJSONRoute
from listenloop.server.limits import UploadRoute
from listenloop.server.schemas import GoldOut, UploadOut
from listenloop.store.database import Database
from listenloop.store.models import Clip

router = APIRouter(tags=["clips"], route_class=StrictJSONRoute)
# The upload routes: the caller is checked before the body is read, and only then may it reach the
# upload limit (every other route takes 1 MiB at most; server/limits.py).
uploads = APIRouter(tags=["clips"], route_class=UploadRoute)


def _owned_project(db: Database, project_id: int, who: Any, limits: UploadLimits) -> int | None:
    """The bytes of audio the caller's project may still store (None: no quota); 403 for others."""
    with db.read() as session:
        project = ops.load_project(session, project_id)
        ops.require_owner(project, who)
        require_writable(project)
        return room_left(project, limits.project_quota_bytes)


async def _intake(
    db: Database,
    project_id: ProjectId,
    who: Any,
    archive: UploadFile | None,
    data_dir: Path,
    limits: UploadLimits,
    labels: dict[str, str] | None,
    manifest: tuple[list[str], Path | None] | None = None,
    room: int | None = None,
) -> dict[str, Any]:
    """Unpack (or copy a manifest's files), then store them in one write transaction: both off the
    event loop."""
    tmp = data_dir / TMP_DIR
    if manifest is not None:
        files, root = manifest
        unpacked: Unpacked = await run_in_threadpool(read_manifest, files, root, tmp, limits, room)
    elif archive is not None:
        unpacked = await run_in_threadpool(unpack_archive, archive.file, tmp, limits, room)
    else:
        raise InvalidError("send an archive (a zip of audio) or a manifest (a CSV of paths)")
    try:
        with db.read() as session:
            project = ops.load_project(session, project_id)
            events = project.task_type == "events"
            segment, hop = ops.segmenting(project)
        if events and unpacked.candidates:  # a long recording becomes its annotation segments
            unpacked = await run_in_threadpool(cut_segments, unpacked, segment, hop)
        if not unpacked.candidates:
            return {"added": 0, "rejected": unpacked.rejected}
        return await run_in_threadpool(
            _store, db, project_id, unpacked, data_dir, who.id, labels, limits.project_quota_bytes
        )
    finally:
        unpacked.cleanup()


def _store(
    db: Database,
    project_id: int,
    unpacked: Unpacked,
    data_dir: Path,
    user_id: int,
    labels: dict[str, str] | None,
    quota: int | None,
) -> dict[str, Any]:
    """The upload's write transaction (in the thread pool: a manifest of 50,000 clips takes seconds)."""
    with db.write() as session:
        project = ops.load_project(session, project_id)
        return store_clips(session, project, unpacked, data_dir, user_id=user_id, labels=labels, quota=quota)


@uploads.post(
    "/projects/{project_id}/clips",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadOut,
    responses={413: {"description": "Over the size limit"}, 422: {"description": "Nothing usable"}},
)
async def upload_clips(
    project_id: ProjectId,
    who: User,
    db: DB,
    data_dir: DataDir,
    limits: Limits,
    request: Request,
    archive: Annotated[UploadFile | None, File(description="A zip of audio files.")] = None,
    labels: Annotated[UploadFile | None, File(description="Optional CSV file,label: the seed set.")] = None,
    manifest: Annotated[
        UploadFile | None,
        File(
            description="Instead of a zip: a CSV file[,label] of audio paths relative to the server's "
            "--import-root (for pools too big to upload); a label makes the clip a seed."
        ),
    ] = None,
) -> Any:
    """Add the audio in a zip, or the files a manifest lists (owner): `{added, rejected: [{file, reason}]}`;
    422 when nothing was added."""
    room = _owned_project(db, project_id, who, limits)
    if (archive is None) == (manifest is None):
        raise InvalidError("send exactly one of archive (a zip of audio) or manifest (a CSV of paths)")
    seed = read_label_csv(await labels.read(), "labels") if labels is not None else None
    listed = None
    if manifest is not None:
        rows = read_label_csv(await manifest.read(), "manifest", labels_required=False)
        seed = {**{f: lab for f, lab in rows.items() if lab}, **(seed or {})}
        listed = (list(rows), request.app.state.import_root)
    result = await _intake(db, project_id, who, archive, data_dir, limits, seed or None, listed, room)
    if not result["added"]:
        reason = "no file in the archive was added"
        return JSONResponse({"detail": reason, **result}, status_code=422)
    return result


@uploads.post("/projects/{project_id}/gold", status_code=status.HTTP_201_CREATED, response_model=GoldOut)
async def upload_gold(
    project_id: ProjectId,
    who: User,
    db: DB,
    data_dir: DataDir,
    limits: Limits,
    file: Annotated[UploadFile, File(description="CSV file,label: clips with a known answer.")],
    archive: Annotated[UploadFile | None, File(description="Optional zip with these clips' audio.")] = None,
) -> Any:
    """Mark clips as control questions with their answers (owner): `{marked, rejected}`."""
    room = _owned_project(db, project_id, who, limits)
    gold = read_label_csv(await file.read(), "gold")
    extra: list[dict[str, str]] = []
    if archive is not None:
        extra = (await _intake(db, project_id, who, archive, data_dir, limits, None, room=room))["rejected"]
    result = await run_in_threadpool(_mark_gold, db, project_id, gold, who.id)
    result["rejected"] = extra + result["rejected"]
    if not result["marked"]:
        return JSONResponse({"detail": "no clip was marked", **result}, status_code=422)
    return result


def _mark_gold(db: Database, project_id: int, gold: dict[str, str], user_id: int) -> dict[str, Any]:
    """Mark control questions in one write transaction (in the thread pool: it reads every clip)."""
    with db.write() as session:
        return mark_gold(session, ops.load_project(session, project_id), gold, user_id=user_id)


def _owned_clip(db: Database, clip_id: int, who: Any) -> tuple[str, str]:
    """(path, sha256) of a clip of the caller's project: its owner (or an admin) only.
    Annotators hear clips through their tasks (`/tasks/{id}/audio`): a clip id is a stable
    identity, which would tell a repeated or control clip from a new one."""
    with db.read() as session:
        clip = session.get(Clip, clip_id)
        if clip is None:
            raise NotFoundError(f"clip {clip_id} does not exist")
        project = ops.load_project(session, clip.project_id)
        ops.require_not_draft(project, who)
        ops.require_member(  # first why a non-member may not (blocked, not invited, ...)
            session, project, who, f"clip {clip_id} belongs to a project you are not a member of"
        )
        if not ops.may_review(session, project, who):
            raise ForbiddenError(
                f"clip {clip_id} is for the owner of its project and its reviewers: annotators hear "
                "clips through their tasks"
            )
        return clip.path, clip.sha256


class UndatedFileResponse(FileResponse):
    """A file without Last-Modified and ETag (both follow the file's time): what annotators get,
    since a control clip's audio (uploaded apart) or a picture rendered earlier would be dated
    differently from a new clip's. The size alone is sent."""

    def set_stat_headers(self, stat_result: os.stat_result) -> None:
        self.headers.setdefault("content-length", str(stat_result.st_size))


def audio_response(data_dir: Path, rel: str, what: str, *, undated: bool = False) -> FileResponse:
    """The stored audio file `rel` as uploaded (NotFoundError naming `what` when it is missing)."""
    path = data_dir / rel
    if not path.is_file():
        raise NotFoundError(f"the audio of {what} is missing from the data folder")
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    kind = UndatedFileResponse if undated else FileResponse
    return kind(path, media_type=media, headers={"Cache-Control": "private, max-age=86400"})


async def spectrogram_response(
    data_dir: Path, rel: str, sha: str, what: str, *, undated: bool = False
) -> FileResponse:
    """A spectrogram picture of the audio `rel`, rendered once and cached by its content hash."""
    png = data_dir / spectrogram_path(sha)
    if not png.is_file():
        audio = data_dir / rel
        if not audio.is_file():
            raise NotFoundError(f"the audio of {what} is missing from the data folder")
        await run_in_threadpool(render_spectrogram, audio, png)
    kind = UndatedFileResponse if undated else FileResponse
    return kind(png, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})


@router.get("/clips/{clip_id}/audio", response_class=FileResponse)
async def clip_audio(clip_id: ClipId, who: User, db: DB, data_dir: DataDir) -> FileResponse:
    """The clip's audio as uploaded (its project's owner; annotators use their task's audio URL)."""
    rel, _ = _owned_clip(db, clip_id, who)
    return audio_response(data_dir, rel, f"clip {clip_id}")


@router.get("/clips/{clip_id}/spectrogram.png", response_class=FileResponse)
async def clip_spectrogram(clip_id: ClipId, who: User, db: DB, data_dir: DataDir) -> FileResponse:
    """A spectrogram picture of the clip (its project's owner), rendered once and cached."""
    rel, sha = _owned_clip(db, clip_id, who)
    return await spectrogram_response(data_dir, rel, sha, f"clip {clip_id}")


# -- the owner's clip browser ---------------------------------------------------------------


class PredictionRun(BaseModel):
    """The learning round whose pool map gave the predictions (the newest round with a map)."""

    run_id: int
    round: int = Field(description="The round's number in the project (1 = the first).")
    labels: int = Field(description="Training labels the round had.")
    at: str | None


class ClipRow(BaseModel):
    """One clip in the browser's table."""

    clip_id: int
    file: str
    status: str = Field(description="pool, queued, done, low_agreement, passed, or control (a control clip).")
    source: str = Field(description="Where `label` comes from: gold, expert, seed or crowd.")
    label: str | None
    confidence: float | None = Field(description="The label's confidence (1: gold, expert and seed labels).")
    n_answers: int = Field(description="Regular answers the clip has.")
    predicted: str | None = Field(
        description="The model's label from `prediction_run` (null: no round yet, or the clip is not "
        "in that round's map sample)."
    )
    duration: float
    updated_at: str | None


class ClipPage(BaseModel):
    """One page of a project's clips, with the total that matches the filters."""

    total: int
    offset: int
    limit: int
    sort: str
    prediction_run: PredictionRun | None
    clips: list[ClipRow]


class ClipAnswer(BaseModel):
    """One stored answer to a clip."""

    task_id: int
    annotator: str
    answer: str | None
    kind: str = Field(description="regular, control, consistency, or expert (the owner's correction).")
    answered_at: str
    trust: float | None = Field(description="The annotator's trust in this project now.")


class CrowdVerdict(BaseModel):
    """The crowd's aggregate (what the label would be without seed or expert labels)."""

    label: str | None
    confidence: float | None


class ExpertLabel(BaseModel):
    """The owner's correction."""

    label: str
    annotator: str | None
    at: str | None


class Prediction(PredictionRun):
    """The model's prediction for the clip from the newest round's map."""

    label: str | None
    in_sample: bool = Field(description="Whether the clip was in that round's map sample.")


class ClipOut(BaseModel):
    """One clip for its owner: label and its source, answers, soft label, prediction, media."""

    clip_id: int
    file: str
    status: str
    source: str
    label: str | None
    confidence: float | None
    n_answers: int
    duration: float
    sample_rate: int
    updated_at: str | None
    crowd: CrowdVerdict
    soft: dict[str, float] = Field(description="The soft label, as the labels export's `soft` column.")
    seed_label: str | None
    gold_label: str | None
    expert: ExpertLabel | None
    answers: list[ClipAnswer]
    answers_total: int
    prediction: Prediction | None
    classes: list[str]
    task_type: str
    audio_url: str
    spectrogram_url: str


class CorrectionIn(BaseModel):
    """The owner's label for a clip: a class, a list of tags (multi-label) or a number (ratings)."""

    model_config = ConfigDict(extra="forbid")

    label: str | int | float | list[str]
    control: bool = Field(
        False, description="Also make the clip a control question with this label as its known answer."
    )


@router.get("/projects/{project_id}/clips", response_model=ClipPage)
def browse_clips(
    project_id: ProjectId,
    who: User,
    db: DB,
    status: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Comma-separated: pool, queued, done, low_agreement, passed, control.",
        ),
    ] = None,
    label: Annotated[
        str | None, Query(max_length=500, description="A class (multi-label: clips with this tag).")
    ] = None,
    min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    annotator: Annotated[
        str | None, Query(max_length=64, description="Clips this username answered.")
    ] = None,
    source: Annotated[str | None, Query(max_length=16, description="gold, expert, seed or crowd.")] = None,
    sort: Annotated[
        str,
        Query(
            max_length=16,
            description="id, file, confidence, answers or updated; a leading - sorts descending.",
        ),
    ] = "id",
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=browser.MAX_PAGE)] = browser.DEFAULT_PAGE,
) -> dict[str, Any]:
    """A page of the project's clips, filtered and sorted, with the total that matches (owner; in the
    thread pool, on a read-only session)."""
    with db.read_only() as session:
        project = ops.load_project(session, project_id)
        return browser.browse_clips(
            session,
            project,
            who,
            status=status,
            label=label,
            min_confidence=min_confidence,
            max_confidence=max_confidence,
            annotator=annotator,
            source=source,
            sort=sort,
            offset=offset,
            limit=limit,
        )


@router.get("/projects/{project_id}/clips/{clip_id}", response_model=ClipOut)
def clip_detail(project_id: ProjectId, clip_id: ClipId, who: User, db: DB) -> dict[str, Any]:
    """One clip: its label and where it comes from, answers, soft label, the model's prediction (owner)."""
    with db.read_only() as session:
        project = ops.load_project(session, project_id)
        return browser.clip_detail(session, project, who, clip_id)


@router.post("/projects/{project_id}/clips/{clip_id}/label", response_model=ClipOut)
async def correct_label(
    project_id: ProjectId, clip_id: ClipId, body: CorrectionIn, who: User, db: DB
) -> dict[str, Any]:
    """Correct a clip's label (owner and reviewers): stored as an expert answer; the clip becomes
    done with this label, and exports mark it `source` expert. `control`: it also becomes a control
    question with this known answer. 409 for a control question."""
    with db.write() as session:
        project = ops.load_project(session, project_id)
        return browser.correct_label(session, project, who, clip_id, body.label, control=body.control)
