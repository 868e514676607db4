"""`listenloop bench similar`: search by example on a synthetic pool (query time, recall@k vs exact)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from listenloop.cli.app import bench_app, check_outputs, write_json


@bench_app.command("similar")
def bench_similar(
    clips: Annotated[int, typer.Option(min=100, help="Clips in the synthetic pool.")] = 100_000,
    feature_set: Annotated[
        str, typer.Option(help="Feature set: the width of the synthetic rows.")
    ] = "compare",
    clusters: Annotated[int, typer.Option(min=1, help="Kinds of sound the rows cluster around.")] = 200,
    queries: Annotated[int, typer.Option(min=1, help="Clips searched by.")] = 500,
    k: Annotated[int, typer.Option(min=1, max=100, help="Neighbours per query.")] = 10,
    workdir: Annotated[Path, typer.Option(help="Folder for the matrix (clips x dim x 4 bytes).")] = Path(
        "bench-similar"
    ),
    keep: Annotated[bool, typer.Option("--keep", help="Keep the work folder (default: deleted).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the pool and the queries.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the row here (JSON).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an earlier --json file.")] = False,
) -> None:
    """Build a synthetic feature matrix, its exact and IVF search indexes, and query both one clip at a
    time (one thread): build times, query times, recall@k of IVF against exact."""
    from listenloop.bench.similar import run_similar_bench

    check_outputs({"--json": json_out}, force)
    row = run_similar_bench(
        clips=clips,
        feature_set=feature_set,
        clusters=clusters,
        queries=queries,
        k=k,
        work=workdir,
        keep=keep,
        seed=seed,
    )
    print(json.dumps(row, indent=1))
    if json_out is not None:
        write_json(json_out, row)
