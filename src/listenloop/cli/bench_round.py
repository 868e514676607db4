"""`listenloop bench round`: a learning round on a huge synthetic pool while annotators work."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from listenloop.cli.app import bench_app, check_outputs, write_json


@bench_app.command("round")
def bench_round(
    clips: Annotated[int, typer.Option(min=100, help="Clips in the big project's pool.")] = 1_000_000,
    feature_set: Annotated[
        str, typer.Option(help="Feature set of the project: the width of its synthetic rows.")
    ] = "compare",
    labels: Annotated[int, typer.Option(min=10, help="Seed labels before the round.")] = 1000,
    classes: Annotated[int, typer.Option(min=2, help="Classes of the project.")] = 3,
    annotators: Annotated[int, typer.Option(min=1, help="Annotators loading the server meanwhile.")] = 8,
    think: Annotated[float, typer.Option(min=0, help="Their pause after each answer, seconds.")] = 0.25,
    warmup: Annotated[float, typer.Option(min=1, help="Seconds of load before the round is due.")] = 20.0,
    timeout: Annotated[float, typer.Option(min=10, help="Longest wait for the round, seconds.")] = 3600.0,
    inline: Annotated[
        bool,
        typer.Option(
            "--inline",
            help="Run the round in a process of the bench's own at normal priority, the server's "
            "learning service off (default: the server's service and its niced, SCHED_IDLE worker).",
        ),
    ] = False,
    workdir: Annotated[
        Path | None, typer.Option(help="Folder for the pool (its matrix needs clips x dim x 4 bytes).")
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the work folder (default: deleted).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic pool.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the row here (JSON).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an earlier --json file.")] = False,
) -> None:
    """Build a synthetic pool (a million ComParE-sized clips by default, on disk), serve it with
    `listenloop serve` under a small annotator load, make a round due: its time, the peak resident
    memory of the learning process and its worker, and request latencies before and during it."""
    from listenloop.bench.round import format_row, row_dict, run_round_bench

    check_outputs({"--json": json_out}, force)
    row, errors = run_round_bench(
        clips=clips,
        feature_set=feature_set,
        labels=labels,
        classes=classes,
        annotators=annotators,
        think=think,
        warmup=warmup,
        timeout=timeout,
        inline=inline,
        workdir=workdir,
        keep=keep,
        seed=seed,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_row(row))
    if errors:
        print(f"load errors: {json.dumps(errors)}")
    if json_out is not None:
        write_json(json_out, row_dict(row) | {"load_errors": errors})
