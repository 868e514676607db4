"""A project's model versions (owner): the list, a download of one as a zip, and the test set."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.background import BackgroundTask

from listenloop.engine import model_versions as versions
from listenloop.engine.projects import load_project, require_owner
from listenloop.server.deps import DB, MAX_ID, DataDir, ProjectId, User
from listenloop.server.json_body import StrictJSONRoute

router = APIRouter(tags=["models"], route_class=StrictJSONRoute)
Version = Annotated[int, PathParam(ge=1, le=MAX_ID, description="A model version's number in the project.")]
ZIP = {"content": {"application/zip": {}}}


class TestSetIn(BaseModel):
    """The clips to hold out as the project's test set (an empty list clears it)."""

    model_config = ConfigDict(extra="forbid")
    clip_ids: list[Annotated[StrictInt, Field(ge=1, le=MAX_ID)]] = Field(max_length=versions.MAX_TEST_CLIPS)


@router.get("/projects/{project_id}/models")
def list_models(project_id: ProjectId, who: User, db: DB) -> list[dict[str, Any]]:
    """The project's model versions, oldest first: `version`, `created`, `config`, `labels` (how many
    trained it), `labels_snapshot` (the id of that label set), `scores` and `downloadable` (owner)."""
    with db.read() as session:
        return versions.list_versions(session, project_id, who)


@router.get(
    "/projects/{project_id}/models/{version}/download", response_class=FileResponse, responses={200: ZIP}
)
def download_model(project_id: ProjectId, version: Version, who: User, db: DB, data: DataDir) -> FileResponse:
    """One model version as a zip of its export folder (what `listenloop model export` writes:
    model files, `model.json`, `training_labels.csv`, the model card `README.md`), streamed."""
    work = Path(tempfile.mkdtemp(prefix="listenloop-model-"))
    try:
        with db.read() as session:
            require_owner(load_project(session, project_id), who)
            versions.export_version(session, project_id, data, work / "model", version)
        archive = work / f"project-{project_id}-model-v{version}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted((work / "model").iterdir()):
                z.write(path, path.name)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return FileResponse(
        archive,
        media_type="application/zip",
        filename=archive.name,
        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True),
    )


@router.get("/projects/{project_id}/test-clips")
def get_test_clips(project_id: ProjectId, who: User, db: DB) -> dict[str, Any]:
    """The ids of the project's test clips (owner)."""
    with db.read() as session:
        return versions.test_clips(session, project_id, who)


@router.put("/projects/{project_id}/test-clips")
def put_test_clips(project_id: ProjectId, body: TestSetIn, who: User, db: DB) -> dict[str, Any]:
    """Hold `clip_ids` out as the project's test set (owner): from the next learning round they are
    never trained on nor ranked, and each model version is scored on those with a label (its
    `scores.test`, which an exported copy of the version reproduces). Replaces the previous set."""
    with db.write() as session:
        return versions.set_test_clips(session, project_id, who, body.clip_ids)
