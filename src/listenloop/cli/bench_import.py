"""`listenloop bench import`: a bulk import of a generated manifest (time, peak memory, report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from listenloop.cli.app import bench_app, check_outputs, write_json


@bench_app.command("import")
def bench_import(
    rows: Annotated[int, typer.Option(min=1, help="Rows of the generated manifest.")] = 1_000_000,
    audio: Annotated[
        Path | None, typer.Option(help="Audio files the rows point at, again and again (e.g. FSDD).")
    ] = None,
    distinct: Annotated[
        int, typer.Option(min=0, help="Instead: generate this many distinct 0.1 s WAVs to point at.")
    ] = 0,
    broken_every: Annotated[int, typer.Option(min=0, help="Every Nth row is broken (0: none).")] = 10_000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="The import's hashing threads.")] = 4,
    workdir: Annotated[Path, typer.Option(help="Folder for the manifest, database and report.")] = Path(
        "bench-import"
    ),
    keep: Annotated[bool, typer.Option("--keep", help="Keep the work folder (default: deleted).")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the row here (JSON).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an earlier --json file.")] = False,
) -> None:
    """Import a generated manifest with `listenloop import start` in a child process: wall time, rows/s,
    the child's peak resident memory, counts, and a sample of the rejection report."""
    from listenloop.bench.bulk_import import run_import_bench

    check_outputs({"--json": json_out}, force)
    if (audio is None) == (distinct == 0):
        raise typer.BadParameter("give --audio DIR or --distinct N")
    row = run_import_bench(
        rows=rows,
        audio=audio,
        distinct=distinct,
        broken_every=broken_every,
        workers=workers,
        work=workdir,
        keep=keep,
    )
    print(json.dumps(row, indent=1))
    if json_out is not None:
        write_json(json_out, row)
