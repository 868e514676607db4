"""`listenloop bench aggregate`: aggregators' accuracy and fit time beside crowd-kit's, on crowd sets."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from listenloop.cli.app import bench_app, check_outputs, write_json


@bench_app.command("aggregate")
def bench_aggregate(
    root: Annotated[
        Path, typer.Argument(help="A folder with answers.csv and truth.csv, or a folder of such folders.")
    ],
    method: Annotated[
        list[str] | None,
        typer.Option("--method", help="Methods to run (repeatable): mv, trust, ds, mace, glad."),
    ] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Timed fits per method and side (median).")] = 1,
    peer: Annotated[bool, typer.Option("--peer/--no-peer", help="Run crowd-kit's same methods too.")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the rows here (JSON list).")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write a bar chart of accuracy (and times) here (PNG).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite existing --json and --plot files.")
    ] = False,
) -> None:
    """Accuracy and fit time of each aggregation method, beside crowd-kit's same method in the same run."""
    from listenloop.bench.aggregate import (
        METHODS,
        format_table,
        plot_aggregate,
        rows_as_dicts,
        run_aggregate_bench,
    )

    check_outputs({"--json": json_out, "--plot": plot}, force)
    rows = run_aggregate_bench(
        root,
        methods=tuple(method) if method else METHODS,
        repeats=repeats,
        peer=peer,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_table(rows))
    if json_out is not None:
        write_json(json_out, rows_as_dicts(rows))
    if plot is not None:
        plot_aggregate(rows, plot)
