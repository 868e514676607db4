"""`listenloop serve`: the platform's HTTP server (FastAPI on uvicorn)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from listenloop.cli.app import app
from listenloop.cli.startup import check_port, check_scheduler, data_folder, private_files
from listenloop.errors import ListenloopError
from listenloop.settings import Settings, as_environment


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="sqlite:///FILE or postgresql+psycopg://... [default: LISTENLOOP_DB or sqlite:///./listenloop.db]",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Folder for audio and caches. [default: LISTENLOOP_DATA or listenloop-data]"
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Server processes (they share the database). [default: LISTENLOOP_WORKERS, else "
            "one per usable core: at most 2 on a SQLite file, 4 on PostgreSQL]",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler", help="Dask scheduler ADDRESS for background work. [default: LISTENLOOP_SCHEDULER]"
        ),
    ] = None,
    import_root: Annotated[
        Path | None,
        typer.Option(
            "--import-root",
            help="Folder that manifest uploads' paths are relative to (off without it). "
            "[default: LISTENLOOP_IMPORT_ROOT]",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "warning",
    read_timeout: Annotated[
        float | None,
        typer.Option(
            "--read-timeout",
            help="Seconds a request's headers may take to arrive, and the longest pause in its body; "
            "slower connections are closed. [default: LISTENLOOP_READ_TIMEOUT or 30]",
        ),
    ] = None,
    max_header_bytes: Annotated[
        int | None,
        typer.Option(
            "--max-header-bytes",
            help="Largest request line and headers (431 above). "
            "[default: LISTENLOOP_MAX_HEADER_BYTES or 65536]",
        ),
    ] = None,
    project_quota: Annotated[
        str | None,
        typer.Option(
            "--project-quota",
            help="Audio each project may store (e.g. 20G, 500M; 0: no quota). Uploads past it get 413. "
            "[default: LISTENLOOP_PROJECT_QUOTA or 20G]",
        ),
    ] = None,
) -> None:
    """Serve REST API v1 (OpenAPI at /docs). The database is created or migrated first.
    Operational settings come from LISTENLOOP_* variables (README: Settings); options win."""
    import uvicorn

    from listenloop.engine.learning.process import LearningProcess
    from listenloop.engine.storage import claim_data_folder
    from listenloop.engine.uploads import UploadLimits, parse_size
    from listenloop.server.app import create_app
    from listenloop.server.http_protocol import guarded_protocol
    from listenloop.store.database import Database, display_url

    env = Settings.from_env()
    # where the state lives: the option, else its LISTENLOOP_* variable (compose.yaml sets those)
    db = db or env.db
    data = data if data is not None else Path(env.data)
    scheduler = scheduler or env.scheduler
    if import_root is None and env.import_root:
        import_root = Path(env.import_root)
    if workers is None:
        workers = env.workers or auto_workers(db)
    if workers < 1:
        raise ListenloopError(f"--workers must be at least 1, not {workers}")
    read_timeout = env.read_timeout if read_timeout is None else read_timeout
    if not read_timeout > 0:
        raise ListenloopError(f"--read-timeout must be above 0 seconds, not {read_timeout}")
    max_header_bytes = env.max_header_bytes if max_header_bytes is None else max_header_bytes
    if max_header_bytes < 1024:
        raise ListenloopError(f"--max-header-bytes must be at least 1024, not {max_header_bytes}")
    try:
        quota = env.project_quota if project_quota is None else parse_size(project_quota)
    except ValueError as exc:
        raise ListenloopError(f"--project-quota: {exc}") from None
    # the options win over the environment: these settings are what this server and its workers run on
    settings = env.model_copy(
        update={
            "db": db,
            "data": str(data.expanduser().resolve()),
            "scheduler": scheduler or None,
            "import_root": str(import_root.expanduser().resolve()) if import_root else None,
            "read_timeout": read_timeout,
            "max_header_bytes": max_header_bytes,
            "project_quota": quota,
        }
    )
    limits = UploadLimits(max_upload_bytes=settings.max_upload, project_quota_bytes=quota)
    check_port(host, port)
    private_files()
    data = data_folder(data)
    if scheduler:
        check_scheduler(scheduler)
    if import_root is not None and not import_root.expanduser().is_dir():
        raise ListenloopError(f"--import-root {import_root}: not a folder")
    database = Database(db, settings)
    try:
        database.upgrade()  # once, here, so that workers never race to migrate
        # and once, here, before any worker or the learning process: what a crash left is removed;
        # `_lock` (on the data folder) is held until this command returns
        _lock, cleaned = claim_data_folder(database, data.expanduser().resolve())
    finally:
        database.dispose()
    if (note := cleaned.summary()) is not None:
        print(f"listenloop: {note}", file=sys.stderr, flush=True)
    shown = display_url(db)  # never the password
    processes = "1 worker" if workers == 1 else f"{workers} workers"
    print(
        f"listenloop serving on http://{host}:{port} (docs at /docs), database {shown}, data {data}, "
        f"{processes}",
        flush=True,
    )
    options = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 5,
        "timeout_keep_alive": settings.keep_alive_seconds,
        # httptools, with a bound on request heads and read timeouts (server/http_protocol.py)
        "http": guarded_protocol(max_head_bytes=max_header_bytes, read_timeout=read_timeout),
    }
    learning = settings.learning
    if workers == 1:
        app = create_app(
            db,
            data,
            migrate=False,
            limits=limits,
            scheduler=scheduler,
            learning=learning,
            import_root=import_root,
            settings=settings,
        )
        uvicorn.run(app, **options)  # type: ignore[arg-type]
        return
    # With several workers the learning service's process is started here, by uvicorn's
    # supervising parent, and not by the workers: one service (and one Dask cluster) per server
    # instead of one per worker, and the workers (spawned, not forked) serve requests only. The
    # database lease still keeps several servers on one PostgreSQL from running a round twice.
    # The workers read their settings from the environment (`app_from_env`): these, the options'
    # values included, and no learning service of their own.
    os.environ.update(worker_environment(settings), LISTENLOOP_PARENT_PID=str(os.getpid()))
    poll = settings.learning_poll_seconds
    service = LearningProcess(db, data, scheduler, poll_seconds=poll) if learning else None
    if service is not None:
        service.start()
    # uvicorn restarts a worker that has not answered its health check within this many seconds
    # (5 by default: on a loaded 2-core machine a worker's start-up alone takes longer, and they
    # were restarted over and over before one served)
    options["timeout_worker_healthcheck"] = settings.worker_healthcheck_seconds
    try:
        _run_workers(host, port, workers, options)
    finally:
        if service is not None:
            service.stop()


def _run_workers(host: str, port: int, workers: int, options: dict[str, Any]) -> None:
    """uvicorn's supervisor over `workers` processes, each with a listening socket of its own
    where the system spreads connections over such sockets (`server/listeners.py`)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from listenloop.server.listeners import PerWorkerSocket, balanced, reserve

    config = uvicorn.Config("listenloop.server.app:app_from_env", factory=True, workers=workers, **options)
    if not balanced():
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    try:
        reserved, bound = reserve(host, port)
    except OSError as exc:
        raise ListenloopError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    with reserved:  # held while the workers serve: the port stays ours between restarts
        sockets: list[Any] = [PerWorkerSocket(host, bound, config.backlog)]
        Multiprocess(config, sockets=sockets).run()


def auto_workers(db: str) -> int:
    """Server processes by default: one per usable core, at most 2 on a SQLite file, 4 on
    PostgreSQL, 1 on an in-memory database (each process would have its own). Two workers
    serve a crowd's simultaneous first requests in parallel where one queues them all
    (`4-serve-load.sh` over this stop's batches: OK in 7 runs of 18 with two, 4 of 18 with one);
    a third on one SQLite file only waits its turn for the write lock (BENCHMARKS.md, "Issue 17:
    two workers by default")."""
    from listenloop.features.extraction import default_workers
    from listenloop.store.database import is_sqlite, is_sqlite_memory

    if is_sqlite_memory(db):
        return 1
    return max(1, min(default_workers(), 2 if is_sqlite(db) else 4))


def worker_environment(settings: Settings) -> dict[str, str]:
    """The LISTENLOOP_* variables that give a worker of `serve --workers N` the same settings as the
    parent, with the learning service off (the parent runs the only one)."""
    return as_environment(settings.model_copy(update={"learning": False}))
