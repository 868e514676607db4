"""Label Studio tasks into a project (owner): `POST /projects/{id}/import/labelstudio`.

An upload route (`UploadRoute`: the owner is checked before the body is read, then the upload
limit applies): the tasks' JSON, and their audio as a zip, or, without a zip, under the server's
`--import-root` (the folder the tasks' paths are resolved against). The work runs in the thread
pool (`engine.labelstudio_import`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile, status
from starlette.concurrency import run_in_threadpool

from listenloop.engine.errors import InvalidError
from listenloop.engine.labelstudio_import import import_labelstudio
from listenloop.server.deps import DB, DataDir, Limits, ProjectId, User
from listenloop.server.limits import UploadRoute

uploads = APIRouter(tags=["clips"], route_class=UploadRoute)


@uploads.post(
    "/projects/{project_id}/import/labelstudio",
    status_code=status.HTTP_201_CREATED,
    responses={413: {"description": "Over the size limit"}, 422: {"description": "Not Label Studio tasks"}},
)
async def import_tasks(
    project_id: ProjectId,
    who: User,
    db: DB,
    data_dir: DataDir,
    limits: Limits,
    request: Request,
    tasks: Annotated[UploadFile, File(description="A Label Studio JSON export: a list of tasks.")],
    archive: Annotated[
        UploadFile | None,
        File(
            description="A zip of the tasks' audio; without it, the audio is under the server's "
            "--import-root."
        ),
    ] = None,
) -> dict[str, Any]:
    """Import Label Studio tasks (owner): a clip per task, an answer per annotation (imported
    annotators `ls-ID`, who cannot sign in), a ground-truth annotation as the owner's expert label,
    predictions ignored. `{tasks, clips_added, answers, cant_tell, expert_labels, annotators,
    predictions_ignored, rejected: [{task, annotation?, reason}], audio_rejected: [{file, reason}]}`."""
    root = request.app.state.import_root
    if archive is None and root is None:
        raise InvalidError(
            "send the tasks' audio as a zip (archive): this server has no --import-root to find it under"
        )
    text = await tasks.read()
    source: dict[str, Any] = {"archive": archive.file} if archive is not None else {"folder": root}
    return await run_in_threadpool(
        import_labelstudio, db, project_id, who, text, data_dir, limits=limits, **source
    )
