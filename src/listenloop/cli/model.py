"""`listenloop model export` (a project's model version as a folder) and `listenloop predict`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from listenloop.cli.app import app
from listenloop.errors import ListenloopError

model_app = typer.Typer(help="A project's trained models.", no_args_is_help=True)
app.add_typer(model_app, name="model")


def _database(url: str):
    """The database at `url`; a SQLite file that does not exist is an error, not a new database."""
    from sqlalchemy.engine import make_url

    from listenloop.store.database import Database

    try:
        parsed = make_url(url)
    except Exception:
        raise ListenloopError(f"--db {url}: not a database URL") from None
    file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if file not in (None, "", ":memory:") and not Path(str(file)).is_file():
        raise ListenloopError(f"--db {url}: no such database file")
    return Database(url)


@model_app.command("export")
def export(
    project: Annotated[int, typer.Argument(help="Project id.", min=1)],
    out: Annotated[Path, typer.Option("--out", help="Folder to write (new, or empty).")],
    version: Annotated[
        int | None, typer.Option("--version", help="Model version (default: the newest).", min=1)
    ] = None,
    db: Annotated[str, typer.Option("--db", help="Database URL.")] = "sqlite:///./listenloop.db",
    data: Annotated[Path, typer.Option("--data", help="The server's data folder.")] = Path("listenloop-data"),
) -> None:
    """Write a model version with its model card: scikit-learn models via skops, deep models as
    torch state dicts, the feature configuration and the classes."""
    from listenloop.engine.model_versions import export_version

    database = _database(db)
    if not data.is_dir():
        database.dispose()
        raise ListenloopError(f"--data {data}: no such folder")
    try:
        database.upgrade()
        with database.read() as session:
            done = export_version(session, project, data, out, version)
    finally:
        database.dispose()
    scores = done["scores"]
    shown = ", ".join(
        f"{k} {scores[k]:.3f}" for k in ("cross_validated", "heldout", "test") if scores.get(k) is not None
    )
    print(
        f"exported version {done['version']} of project {project} ({done['labels']} labels"
        + (f"; {scores['metric']} {shown}" if shown else "")
        + f") to {out}"
    )


@app.command("predict")
def predict(
    model_dir: Annotated[Path, typer.Argument(help="A folder written by `listenloop model export`.")],
    inputs: Annotated[list[Path], typer.Argument(help="Audio files or folders of them.")],
    out: Annotated[Path, typer.Option("--out", help="CSV to write: file,label,confidence.")] = Path(
        "predictions.csv"
    ),
) -> None:
    """Label audio with an exported model, features computed as in training."""
    from listenloop.engine.predictions import predict_files, write_predictions

    if not out.parent.is_dir():
        raise ListenloopError(f"--out {out}: folder {out.parent} does not exist")
    result = predict_files(model_dir, inputs, log=lambda line: print(line, file=sys.stderr))
    write_predictions(out, result)
    print(
        f"labelled {len(result.rows)} files to {out}"
        + (f" ({len(result.skipped)} skipped)" if result.skipped else "")
    )
