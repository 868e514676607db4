"""`listenloop bench features DATASET`: extraction speed against openSMILE called directly."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from listenloop.cli.app import bench_app, write_json
from listenloop.errors import ListenloopError


@bench_app.command("features")
def bench_features(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder with labels.csv (a 'file' column).")],
    sets: Annotated[str, typer.Option(help="Comma-separated feature sets.")] = "egemaps,compare",
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many files, spread evenly.")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Timed runs per side (best one counts).")] = 1,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result here (JSON).")] = None,
) -> None:
    """Real-time factor of listenloop's extraction (1 worker, no cache) and of opensmile's process_file."""
    from listenloop.bench.features import format_table, run_features_bench

    names = [s.strip() for s in sets.split(",") if s.strip()]
    if not names:
        raise ListenloopError("--sets: name at least one feature set")
    result = run_features_bench(
        dataset,
        names,
        limit=limit,
        repeats=repeats,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_table(result))
    if json_out is not None:
        write_json(json_out, result)
