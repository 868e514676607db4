"""Search by example: a project's clips nearest to one of its clips, or to an uploaded clip
(`engine/similar.py`)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from listenloop.audio.io import AUDIO_EXTENSIONS
from listenloop.engine import projects as ops
from listenloop.engine import similar
from listenloop.engine.errors import InvalidError
from listenloop.engine.storage import TMP_DIR
from listenloop.server.deps import DB, ClipId, DataDir, ProjectId, User
from listenloop.server.json_body import StrictJSONRoute
from listenloop.server.limits import ReviewUploadRoute
from listenloop.store.database import Database

router = APIRouter(tags=["search"], route_class=StrictJSONRoute)
uploads = APIRouter(tags=["search"], route_class=ReviewUploadRoute)
K = Annotated[int, Query(ge=1, le=similar.MAX_K, description="How many clips.")]


class Neighbour(BaseModel):
    """One clip of the pool near the example, with what the clip browser shows of it."""

    clip_id: int
    file: str
    distance: float = Field(description="Euclidean, in the search space (standardised features, PCA).")
    status: str
    source: str
    label: str | None
    confidence: float | None
    duration: float


class IndexInfo(BaseModel):
    """The index the answer came from."""

    kind: str = Field(description="exact (every clip compared) or ivf (approximate, for large pools).")
    clips: int
    stale: bool = Field(description="Built before the newest features: clips added since are not found yet.")


class SimilarOut(BaseModel):
    """The nearest clips, nearest first (a clip of the pool is its own nearest, at distance 0)."""

    clip_id: int | None = None
    k: int
    index: IndexInfo
    neighbours: list[Neighbour]


def _by_clip(db: Database, data_dir: Path, project_id: int, who: Any, clip_id: int, k: int) -> dict[str, Any]:
    with db.read_only() as session:
        project = ops.load_project(session, project_id)
        ops.require_reviewer(session, project, who)
        return similar.similar_to_clip(session, project, data_dir, clip_id, k)


@router.get("/projects/{project_id}/clips/{clip_id}/similar", response_model=SimilarOut)
async def similar_clips(
    project_id: ProjectId, clip_id: ClipId, who: User, db: DB, data_dir: DataDir, k: K = similar.DEFAULT_K
) -> dict[str, Any]:
    """The project's `k` clips nearest to this clip in its feature space (owner, reviewers): to find more
    of a rare class. 409 while the project has no features (before its first learning round)."""
    return await run_in_threadpool(_by_clip, db, data_dir, project_id, who, clip_id, k)


def _by_audio(db: Database, data_dir: Path, project_id: int, who: Any, audio: Path, k: int) -> dict[str, Any]:
    with db.read_only() as session:
        project = ops.load_project(session, project_id)
        ops.require_reviewer(session, project, who)
        vector = similar.embed_audio(project, audio)
        return similar.similar_to_vector(session, project, data_dir, vector, k)


@uploads.post("/projects/{project_id}/similar", response_model=SimilarOut)
async def similar_to_upload(
    project_id: ProjectId,
    who: User,
    db: DB,
    data_dir: DataDir,
    audio: Annotated[UploadFile, File(description="An audio file: the example to search by.")],
    k: K = similar.DEFAULT_K,
) -> dict[str, Any]:
    """The project's `k` clips nearest to an uploaded clip (owner, reviewers); its features are computed as
    the project's are. Nothing is stored."""
    ext = PurePosixPath(audio.filename or "").suffix.lower()
    if ext not in AUDIO_EXTENSIONS:
        raise InvalidError(f"send an audio file ({', '.join(AUDIO_EXTENSIONS)}), not {ext or 'no extension'}")
    spool = data_dir / TMP_DIR
    spool.mkdir(parents=True, exist_ok=True)

    def to_disk() -> Path:
        fd, tmp = tempfile.mkstemp(prefix="example-", suffix=ext, dir=spool)
        with open(fd, "wb") as out:
            audio.file.seek(0)
            shutil.copyfileobj(audio.file, out, 1 << 20)
        return Path(tmp)

    path = await run_in_threadpool(to_disk)
    try:
        return await run_in_threadpool(_by_audio, db, data_dir, project_id, who, path, k)
    finally:
        path.unlink(missing_ok=True)
