"""`listenloop demo`: the platform with a ready spoken-digit campaign, on an embedded database."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from listenloop.cli.app import app
from listenloop.cli.startup import KEEP_ALIVE_SECONDS, check_port, data_folder


@app.command("demo")
def demo(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    data: Annotated[Path, typer.Option("--data", help="Folder for the demo's database and audio.")] = Path(
        "listenloop-demo"
    ),
) -> None:
    """Start the server with a demo project (300 FSDD digits) and print an owner and an annotator login."""
    import uvicorn

    from listenloop.demo.setup import prepare_demo
    from listenloop.server.app import create_app
    from listenloop.store.database import Database

    check_port(host, port)
    data = data_folder(data).resolve()
    url = f"sqlite:///{data / 'listenloop.db'}"
    database = Database(url)
    try:
        database.upgrade()
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
    uvicorn.run(
        create_app(url, data, migrate=False),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
