"""`listenloop bench query`: one query batch over big synthetic pools, listenloop against modAL."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from listenloop.cli.app import bench_app, comma_numbers, write_json
from listenloop.errors import ListenloopError


@bench_app.command("query")
def bench_query(
    pool_sizes: Annotated[
        str, typer.Option(help="Comma-separated pool sizes (clips).")
    ] = "10000,100000,1000000",
    dims: Annotated[int, typer.Option(min=1, help="Feature dimensions.")] = 88,
    classes: Annotated[int, typer.Option(min=2, help="Classes of the logistic regression.")] = 7,
    batch: Annotated[int, typer.Option(min=1, help="Clips per query batch.")] = 30,
    repeats: Annotated[int, typer.Option(min=1, help="Timed calls (median) after a warm-up.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic pools and labelled set.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the rows here (JSON list).")] = None,
) -> None:
    """Time one query batch (least confidence, margin, entropy, random against modAL; margin_diverse,
    auto, and dal with the deep extra, alone), one thread."""
    from listenloop.bench.query import format_table, run_query_bench

    sizes = comma_numbers(pool_sizes, "--pool-sizes", cast=int, low=1)
    if min(sizes) < batch:
        raise ListenloopError(f"--pool-sizes: pool {min(sizes)} is smaller than --batch {batch}")
    rows = run_query_bench(
        sizes,
        dims=dims,
        classes=classes,
        batch=batch,
        repeats=repeats,
        seed=seed,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_table(rows))
    if json_out is not None:
        write_json(json_out, rows)
