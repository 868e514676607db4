"""`listenloop import start|resume|status`: bulk imports of a manifest from the command line.

What the server's `POST …/imports` does, run in the foreground by whoever runs the server: the
manifest is read where it is (not copied), its local paths may point anywhere this user can
read (relative ones are relative to the manifest's folder, or `--base`), and any fsspec
protocol may be fetched. Ctrl-C stops after the chunk in hand; `resume JOB` continues.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from listenloop.cli.app import app
from listenloop.errors import ListenloopError

import_app = typer.Typer(help="Bulk imports of manifests (CSV or JSONL of audio uris).", no_args_is_help=True)
app.add_typer(import_app, name="import")

DB = Annotated[str, typer.Option("--db", help="Database URL.")]
DATA = Annotated[Path, typer.Option("--data", help="The server's data folder (reports, fetched audio).")]
WORKERS = Annotated[int, typer.Option("--workers", min=1, max=64, help="Files hashed and probed at once.")]


def _summary(view: dict[str, Any]) -> str:
    return (
        f"import {view['id']}: {view['status']}, {view['rows']:,} rows, {view['added']:,} added, "
        f"{view['rejected']:,} rejected ({view['duplicates']:,} duplicates)"
        + (f"; error: {view['error']}" if view["error"] else "")
    )


def _run(db_url: str, data: Path, job_id: int, workers: int) -> None:
    """Run the job here until it ends or Ctrl-C, printing progress to stderr."""
    from listenloop.engine import bulk_import as bulk
    from listenloop.store.database import Database
    from listenloop.store.models import ImportJob

    database = Database(db_url)
    stop = threading.Event()
    started = time.monotonic()
    last = [0.0]

    def progress(p: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - last[0] >= 5:
            last[0] = now
            rate = p["rows"] / max(now - started, 1e-9)
            print(f"  {p['rows']:,} rows, {rate:,.0f} rows/s", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        database.upgrade()
        status = bulk.run_job(
            database, data.expanduser().resolve(), job_id, workers=workers, stop=stop, progress=progress
        )
        if status == "busy":
            raise ListenloopError(f"import {job_id} is running in another process (or is finished)")
        with database.read() as session:
            job = session.get(ImportJob, job_id)
            assert job is not None
            view = bulk.job_view(job)
    finally:
        signal.signal(signal.SIGINT, previous)
        database.dispose()
    print(_summary(view) + f" in {time.monotonic() - started:.1f} s")
    print(f"rejection report: {bulk.job_dir(data.expanduser().resolve(), job_id) / bulk.REPORT_NAME}")
    if view["status"] == "failed":
        raise typer.Exit(1)
    if stop.is_set():
        print(f"stopped: `listenloop import resume {job_id}` continues", file=sys.stderr)
        raise typer.Exit(130)


@import_app.command("start")
def start(
    project: Annotated[int, typer.Argument(help="The project's id.")],
    manifest: Annotated[Path, typer.Argument(help="CSV (uri[,label][,group][,...]) or JSONL.")],
    fmt: Annotated[str | None, typer.Option("--format", help="csv or jsonl (default: by extension).")] = None,
    base: Annotated[
        Path | None,
        typer.Option("--base", help="Folder relative paths are read from (default: the manifest's)."),
    ] = None,
    queue: Annotated[
        bool, typer.Option("--queue", help="Only queue it: a running server (same --db, --data) imports it.")
    ] = False,
    db: DB = "sqlite:///./listenloop.db",
    data: DATA = Path("listenloop-data"),
    workers: WORKERS = 4,
) -> None:
    """Import the audio a manifest lists into a project: local files in place, duplicates by content
    rejected, each rejected row in the report with its reason."""
    from listenloop.engine import bulk_import as bulk
    from listenloop.engine.projects import load_project
    from listenloop.store.database import Database

    path = manifest.expanduser().resolve()
    if not path.is_file():
        raise ListenloopError(f"{manifest}: no such file")
    folder = (base or path.parent).expanduser().resolve()
    if not folder.is_dir():
        raise ListenloopError(f"--base {base}: not a folder")
    database = Database(db)
    try:
        database.upgrade()
        with database.write() as session:
            job = bulk.create_job(
                session,
                load_project(session, project),
                path,
                source=manifest.name,
                fmt=bulk.manifest_format(path.name, fmt),
                sources=bulk.Sources(base=folder, protocols=frozenset({"*"})),
                user_id=None,
            )
            job_id = job.id
    finally:
        database.dispose()
    print(f"import {job_id} queued", file=sys.stderr)
    if not queue:
        _run(db, data, job_id, workers)


@import_app.command("resume")
def resume(
    job: Annotated[int, typer.Argument(help="The import's id.")],
    db: DB = "sqlite:///./listenloop.db",
    data: DATA = Path("listenloop-data"),
    workers: WORKERS = 4,
) -> None:
    """Continue an import where it stopped (Ctrl-C, a crash, a restart)."""
    _run(db, data, job, workers)


@import_app.command("status")
def status(
    job: Annotated[int, typer.Argument(help="The import's id.")],
    db: DB = "sqlite:///./listenloop.db",
) -> None:
    """An import's progress."""
    from listenloop.engine import bulk_import as bulk
    from listenloop.store.database import Database
    from listenloop.store.models import ImportJob

    database = Database(db)
    try:
        with database.read() as session:
            found = session.get(ImportJob, job)
            if found is None:
                raise ListenloopError(f"import {job} does not exist")
            view = bulk.job_view(found)
    finally:
        database.dispose()
    print(_summary(view) + f", {view['progress']:.1%} of the manifest read")
