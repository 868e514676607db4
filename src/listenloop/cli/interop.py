"""`listenloop labelstudio import` and `listenloop export hf`: a project in from Label Studio, and
its labels out as a Hugging Face `datasets` audio dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from listenloop.cli.app import app
from listenloop.errors import ListenloopError

labelstudio_app = typer.Typer(help="Label Studio's JSON tasks in and out.", no_args_is_help=True)
app.add_typer(labelstudio_app, name="labelstudio")
export_app = typer.Typer(help="Exports to other tools' formats.", no_args_is_help=True)
app.add_typer(export_app, name="export")

DB = Annotated[str, typer.Option("--db", help="Database URL.")]
DATA = Annotated[Path, typer.Option("--data", help="The server's data folder (where the audio is stored).")]
SHOWN_REJECTIONS = 20


@labelstudio_app.command("import")
def import_labelstudio(
    tasks: Annotated[Path, typer.Argument(help="A Label Studio JSON export (a list of tasks).")],
    project: Annotated[int, typer.Option("--project", help="The project to import into (its id).")],
    audio: Annotated[
        Path, typer.Option("--audio", help="The folder the tasks' audio is under (or a zip of it).")
    ],
    db: DB = "sqlite:///./listenloop.db",
    data: DATA = Path("listenloop-data"),
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the full report (JSON) here.")
    ] = None,
) -> None:
    """Import Label Studio tasks: each task's audio becomes a clip, each annotation an answer of an
    imported annotator (`ls-ID` accounts that cannot sign in), a ground-truth annotation the
    owner's expert label; predictions are ignored. Prints what was added and what was rejected."""
    from listenloop.engine.accounts import Principal
    from listenloop.engine.labelstudio_import import import_labelstudio as run
    from listenloop.engine.projects import load_project
    from listenloop.store.database import Database

    try:
        text = tasks.read_bytes()
    except OSError as exc:
        raise ListenloopError(f"{tasks}: {exc.strerror or exc}") from None
    if not audio.exists():
        raise ListenloopError(f"--audio {audio}: no such folder or zip")
    database = Database(db)
    try:
        database.upgrade()
        with database.read() as session:
            owner = load_project(session, project).owner
            who = Principal(owner.id, owner.username, owner.role)
        source = {"folder": audio} if audio.is_dir() else {"archive": audio}
        result = run(database, project, who, text, data.expanduser(), **source)  # type: ignore[arg-type]
    finally:
        database.dispose()
    if report is not None:
        report.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"imported {result['clips_added']} of {result['tasks']} tasks into project {project}: "
        f"{result['answers']} answers ({result['cant_tell']} can't tell) from "
        f"{len(result['annotators'])} annotators, {result['expert_labels']} expert labels; "
        f"{result['predictions_ignored']} predictions ignored"
    )
    rejected = result["rejected"] + [
        {"task": r["file"], "reason": r["reason"]} for r in result["audio_rejected"]
    ]
    for r in rejected[:SHOWN_REJECTIONS]:
        where = f"task {r['task']}" + (f" annotation {r['annotation']}" if "annotation" in r else "")
        print(f"rejected: {where}: {r['reason']}")
    if len(rejected) > SHOWN_REJECTIONS:
        print(
            f"… and {len(rejected) - SHOWN_REJECTIONS} more rejections"
            + (" (see --report)" if report else "")
        )


@export_app.command("hf")
def export_hf(
    project: Annotated[int, typer.Argument(help="The project's id.")],
    out: Annotated[Path, typer.Option("--out", help="The folder to write the dataset to (save_to_disk).")],
    db: DB = "sqlite:///./listenloop.db",
    data: DATA = Path("listenloop-data"),
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
) -> None:
    """Write the project's final labels as a Hugging Face `datasets` audio dataset (`load_from_disk`
    reads it back): Audio and ClassLabel columns, and a dataset card (README.md)."""
    from listenloop.engine.agreement import AGREEMENT_TASKS, project_agreement
    from listenloop.engine.hf_dataset import export_dataset, require_datasets
    from listenloop.engine.projects import load_project
    from listenloop.store.database import Database

    require_datasets()  # the extra, before anything else
    if out.exists() and not force and (not out.is_dir() or any(out.iterdir())):
        raise ListenloopError(f"--out {out} exists: choose another folder or pass --force")
    if not out.parent.is_dir():
        raise ListenloopError(f"--out {out}: folder {out.parent} does not exist")
    database = Database(db)
    try:
        database.upgrade()
        with database.read() as session:
            p = load_project(session, project)
            stats = project_agreement(session, p) if p.task_type in AGREEMENT_TASKS else None
            result = export_dataset(session, p, data.expanduser(), out, agreement=stats)
    finally:
        database.dispose()
    print(
        f"wrote {result['rows']} labelled clips of project {project} to {out} "
        f"({len(result['classes'])} classes)"
    )
