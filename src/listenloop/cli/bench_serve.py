"""`listenloop bench serve`: latency and throughput of the annotator API under a loopback load."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from listenloop.cli.app import bench_app, check_outputs, comma_numbers, write_json
from listenloop.errors import ListenloopError


@bench_app.command("serve")
def bench_serve(
    annotators: Annotated[int, typer.Option(min=1, help="Simulated annotators.")] = 64,
    seconds: Annotated[float, typer.Option(min=1, help="Seconds per load phase.")] = 30.0,
    think: Annotated[
        str, typer.Option(help="Pause after each answer, seconds; one phase per value (comma-separated).")
    ] = "0.5,0",
    db: Annotated[
        str | None, typer.Option(help="Database URL (default: SQLite in a temporary folder).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server worker processes.")] = 1,
    clips: Annotated[
        Path | None,
        typer.Option(
            help="Folder of audio clips for the project, or a dataset folder with labels.csv (default: the "
            "demo's 300 FSDD clips, which 64 annotators without a pause answer in a few seconds)."
        ),
    ] = None,
    yardstick: Annotated[
        bool,
        typer.Option(
            "--yardstick",
            help="Load a server that does no work instead (answers from memory): what this machine "
            "and the load client allow.",
        ),
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the rows here (JSON list).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an earlier --json file.")] = False,
) -> None:
    """Start `listenloop serve` on loopback and load it with annotators: answers/s, p50/p99 latency,
    and the server's CPU per answer."""
    from listenloop.bench.serve import format_row, rows_as_dicts, run_serve_bench

    check_outputs({"--json": json_out}, force)
    if clips is not None and not clips.is_dir():
        raise ListenloopError(f"--clips {clips}: no such folder")
    rows = run_serve_bench(
        annotators=annotators,
        seconds=seconds,
        thinks=tuple(comma_numbers(think, "--think", low=0.0)),
        db=db,
        workers=workers,
        clips=clips,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
        yardstick=yardstick,
    )
    for row in rows:
        print(format_row(row))
    if json_out is not None:
        write_json(json_out, rows_as_dicts(rows))
