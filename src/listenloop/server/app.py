"""The FastAPI application: REST API v1 under /api/v1, OpenAPI at /docs.

`create_app(db_url, data_dir)` builds it (and brings the database schema up to date);
`app_from_env()` is the import-string factory that `listenloop serve --workers N` hands to
uvicorn, configured by the settings (`listenloop/settings.py`: LISTENLOOP_DB, LISTENLOOP_DATA,
LISTENLOOP_SCHEDULER, LISTENLOOP_IMPORT_ROOT, LISTENLOOP_LEARNING and the operational ones). The
app's lifespan runs the background learning service (`engine/learning/service.py`) unless
`learning=False` (or LISTENLOOP_LEARNING=0).
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.types import ASGIApp

from listenloop import __version__
from listenloop.engine.bulk_import import ImportRunner
from listenloop.engine.errors import (
    ConflictError,
    EngineError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    ProblemsError,
    TooLargeError,
    UnauthorizedError,
)
from listenloop.engine.learning.process import LearningProcess
from listenloop.engine.learning.service import LearningService
from listenloop.engine.live.settle import settle_all
from listenloop.engine.uploads import ArchiveRejectedError, UploadLimits
from listenloop.errors import ListenloopError
from listenloop.lifetime import die_with_parent
from listenloop.server.config_body import problems_response
from listenloop.server.deps import IdleCache, TokenCache
from listenloop.server.fast_lane import AnnotatorFastLane
from listenloop.server.group_commit import GroupCommit
from listenloop.server.limits import BodyLimitMiddleware
from listenloop.server.login_guard import HashGate, LoginThrottle
from listenloop.server.routers import (
    clips,
    dashboard,
    dry_runs,
    exports,
    imports,
    labelstudio,
    leaderboard,
    models,
    projects,
    review,
    similar,
    tasks,
    users,
)
from listenloop.server.routers.docs import mount_docs
from listenloop.server.routers.pages import mount_pages
from listenloop.server.security_headers import SecurityHeadersMiddleware
from listenloop.server.settle_soon import SettleSoon
from listenloop.server.warm_up import warm_up
from listenloop.settings import Settings
from listenloop.store.database import DEFAULT_URL, Database
from listenloop.store.prepared import compile_all

DEFAULT_DATA = "listenloop-data"
STATUS: list[tuple[type[EngineError], int]] = [
    (UnauthorizedError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (TooLargeError, 413),
    (InvalidError, 422),
]


async def _engine_error(request: Request, exc: Exception) -> JSONResponse:
    """One status per engine error; the body is `{"detail": reason}` (plus the upload report), or
    `{"detail": [{loc, field, msg, type}, ...]}` for several problems (ProblemsError)."""
    code = next((c for cls, c in STATUS if isinstance(exc, cls)), 422)
    if isinstance(exc, ProblemsError):
        return problems_response(exc.problems)
    body: dict[str, object] = {"detail": str(exc)}
    if isinstance(exc, ArchiveRejectedError):
        body.update(added=0, rejected=exc.rejected or [{"file": "(archive)", "reason": exc.reason}])
    headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
    return JSONResponse(body, status_code=code, headers=headers)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 without the values sent: each problem's `input` is dropped, so that an error
    never echoes a body (or a part of one) back to its sender."""
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _busy(request: Request, exc: Exception) -> JSONResponse:
    """The database stayed locked past the busy timeout: ask the client to retry."""
    return JSONResponse(
        {"detail": "the database is busy; retry"}, status_code=503, headers={"Retry-After": "1"}
    )


async def _integrity(request: Request, exc: Exception) -> JSONResponse:
    """A concurrent request got there first (a unique constraint held)."""
    return JSONResponse({"detail": "conflict with a concurrent change; retry"}, status_code=409)


class _App(FastAPI):
    """FastAPI with the security headers outside everything, so that even a 500 carries them, and
    the annotators' fast lane (`server/fast_lane.py`) in front of FastAPI's own stack."""

    def build_middleware_stack(self) -> ASGIApp:
        limit = self.state.settings.json_body_limit
        lane = AnnotatorFastLane(super().build_middleware_stack(), self.state, limit)
        return SecurityHeadersMiddleware(lane)


def create_app(
    db_url: str = DEFAULT_URL,
    data_dir: str | Path = DEFAULT_DATA,
    *,
    migrate: bool = True,
    limits: UploadLimits | None = None,
    scheduler: str | None = None,
    learning: bool = True,
    import_root: str | Path | None = None,
    settings: Settings | None = None,
) -> FastAPI:
    """The API on the database at `db_url` with audio under `data_dir` (created if missing,
    for its owner only).

    `migrate` applies the schema migrations first (a new SQLite file needs nothing else).
    `scheduler` is the Dask scheduler for background work (None: a local cluster).
    `learning` runs the learning service (retrain and re-rank in the background) while the app
    runs; tests of the request path turn it off.
    `import_root`: the folder that manifest uploads' paths are relative to (None: no manifests).
    `settings`: the operational settings (default: read from the environment now).
    """
    settings = settings or Settings.from_env()
    data = Path(data_dir).expanduser().resolve()
    try:
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ListenloopError(f"--data {data_dir}: {exc.strerror or exc}") from None
    db = Database(db_url, settings)
    if migrate:
        db.upgrade()

    service: LearningProcess | LearningService | None = None
    if learning:
        # A process of its own, so its work never holds this process's GIL; an in-memory
        # database exists in this process only, so its service runs in a thread here.
        poll = settings.learning_poll_seconds
        service = (
            LearningService(db, data, scheduler, poll_seconds=poll, lease=settings.learning_lease)
            if db.in_memory
            else LearningProcess(db.url, data, scheduler, poll_seconds=poll)
        )

    upload_limits = limits or UploadLimits(
        max_upload_bytes=settings.max_upload, project_quota_bytes=settings.project_quota
    )
    # bulk imports (`POST …/imports`) run in a thread of each process; a job's lease keeps it to one
    runner = ImportRunner(
        db, data, quota=upload_limits.project_quota_bytes, max_bytes=upload_limits.max_entry_bytes
    )

    @asynccontextmanager
    async def lifespan(started: FastAPI) -> AsyncIterator[None]:
        stop_checkpoints = db.start_checkpointer()
        await warm_up(started)
        compile_all(db.engine.dialect)
        settle_all(db)  # clips a crash left waiting for their aggregate
        gc.freeze()  # start-up objects never need collecting: shorter GC pauses on the hot paths
        if service is not None:
            service.start()
        runner.start()
        try:
            yield
        finally:
            runner.stop()
            if service is not None:
                service.stop()
            with suppress(Exception):  # what this process deferred (else the next start settles it)
                settle_all(db)
            stop_checkpoints()
            db.dispose()

    app = _App(
        title="listenloop",
        version=__version__,
        description="Crowdsourced audio annotation with active learning: REST API v1.",
        lifespan=lifespan,
        docs_url=None,  # served by routers/docs.py without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.data_dir = data
    app.state.limits = upload_limits
    app.state.imports = runner
    app.state.scheduler = scheduler
    app.state.import_root = Path(import_root).expanduser().resolve() if import_root else None
    app.state.learning = service
    app.state.token_cache = TokenCache(seconds=settings.token_cache_seconds)
    app.state.idle = IdleCache()
    app.state.settle_soon = SettleSoon(db)
    app.state.group_commit = GroupCommit(db)
    app.state.login_throttle = LoginThrottle(
        account_limit=settings.login_account_failures,
        address_limit=settings.login_address_failures,
        window=settings.login_window_seconds,
    )
    app.state.hash_gate = HashGate()
    # 1 MiB (json_body_limit), unless the route raises it (upload routes)
    app.add_middleware(BodyLimitMiddleware, default=settings.json_body_limit)
    app.add_exception_handler(EngineError, _engine_error)
    app.add_exception_handler(ListenloopError, _engine_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(OperationalError, _busy)
    app.add_exception_handler(IntegrityError, _integrity)
    # The annotators' loop (tasks) first: routes are matched in order, and it is the hot path.
    for module in (
        tasks,
        users,
        projects,
        clips,
        similar,
        imports,
        exports,
        leaderboard,
        dashboard,
        review,
        models,
    ):
        app.include_router(module.router, prefix="/api/v1")
    app.include_router(dry_runs.router, prefix="/api/v1")
    app.include_router(clips.uploads, prefix="/api/v1")
    app.include_router(labelstudio.uploads, prefix="/api/v1")
    app.include_router(imports.uploads, prefix="/api/v1")
    app.include_router(similar.uploads, prefix="/api/v1")
    mount_docs(app)
    mount_pages(app)  # after the docs: /static/swagger-ui must match before /static
    return app


def app_from_env() -> FastAPI:
    """The app as the settings say (LISTENLOOP_DB, LISTENLOOP_DATA, LISTENLOOP_SCHEDULER,
    LISTENLOOP_LEARNING, ...): what each worker of `serve --workers N` runs.

    The parent (`listenloop serve`) has already migrated the database, and with several workers
    it runs the learning service itself (LISTENLOOP_LEARNING=0 here).
    """
    parent = os.environ.get("LISTENLOOP_PARENT_PID")
    if parent:
        die_with_parent(int(parent))
    settings = Settings.from_env()
    return create_app(
        settings.db,
        settings.data,
        migrate=os.environ.get("LISTENLOOP_MIGRATE", "0") == "1",
        scheduler=settings.scheduler,
        learning=settings.learning,
        import_root=settings.import_root,
        settings=settings,
    )
