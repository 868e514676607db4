"""`listenloop demo`: the platform with a ready spoken-digit campaign, on an embedded database."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from listenloop.cli.app import app
from listenloop.cli.startup import check_port, data_folder, private_files
from listenloop.demo.crowd import DEFAULT_SIZE, MAX_SIZE


def _own_url(host: str, port: int) -> str:
    """The URL at which this process reaches the server it starts (a wildcard address: loopback)."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@app.command("demo")
def demo(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    data: Annotated[Path, typer.Option("--data", help="Folder for the demo's database and audio.")] = Path(
        "listenloop-demo"
    ),
    crowd: Annotated[
        int,
        typer.Option(
            "--crowd",
            min=0,
            max=MAX_SIZE,
            help="Simulated annotators of mixed skill (one a spammer from three up) who label in the "
            "background at a human pace, so that clips finish and the model retrains; 0 turns them off.",
        ),
    ] = DEFAULT_SIZE,
    crowd_speed: Annotated[
        float,
        typer.Option(
            "--crowd-speed",
            min=0.01,
            max=100.0,
            help="How many times faster than a person the demo crowd answers.",
        ),
    ] = 1.0,
) -> None:
    """Start the server with a demo project (300 FSDD digits) and print an owner and an annotator login."""
    import uvicorn

    from listenloop.demo.crowd import describe, members, start_crowd
    from listenloop.demo.setup import DEMO_CLASSES, prepare_demo
    from listenloop.engine.storage import claim_data_folder
    from listenloop.server.app import create_app
    from listenloop.server.http_protocol import guarded_protocol
    from listenloop.settings import settings
    from listenloop.store.database import Database

    check_port(host, port)
    private_files()
    data = data_folder(data).resolve()
    url = f"sqlite:///{data / 'listenloop.db'}"
    database = Database(url)
    try:
        database.upgrade()
        # what a crash left is removed first; `_lock` (on the data folder) is held until the demo stops
        _lock, _ = claim_data_folder(database, data)
        logins = prepare_demo(database, data)
    finally:
        database.dispose()
    print(f"owner login: {logins.owner[0]} {logins.owner[1]}")
    print(f"annotator login: {logins.annotator[0]} {logins.annotator[1]}", flush=True)
    print(
        f"listenloop demo on http://{host}:{port} (API docs at /docs), project {logins.project_id}, "
        f"data in {data}; Ctrl+C stops it",
        file=sys.stderr,
        flush=True,
    )
    print(
        describe(members(crowd, len(DEMO_CLASSES))) + (" (--crowd 0 turns it off)" if crowd else ""),
        file=sys.stderr,
        flush=True,
    )
    app = create_app(url, data, migrate=False)
    # The crowd asks the server itself: its first requests wait for uvicorn to listen.
    running = (
        start_crowd(url, _own_url(host, port), logins.project_id, DEMO_CLASSES, crowd, speed=crowd_speed)
        if crowd
        else None
    )
    s = settings()
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            timeout_keep_alive=s.keep_alive_seconds,
            http=guarded_protocol(s.max_header_bytes, s.read_timeout),
        )
    finally:
        if running is not None:
            running[0].stop()
            running[1].dispose()
