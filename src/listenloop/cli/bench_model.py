"""`listenloop bench model-export`: an exported model version against the score its project reported."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from listenloop.cli.app import bench_app, check_outputs, comma_numbers, write_json


@bench_app.command("model-export")
def bench_model_export(
    folder: Annotated[
        Path, typer.Argument(help="A folder of clips with labels.csv (file,label): the truth.")
    ],
    clips: Annotated[int, typer.Option(min=20, help="Clips the campaign labels.")] = 300,
    held: Annotated[int, typer.Option(min=10, help="Other clips held out as the project's test set.")] = 100,
    seeds: Annotated[int, typer.Option(min=0, help="Seed labels per class.")] = 2,
    gold: Annotated[int, typer.Option(min=0, help="Control questions per class.")] = 1,
    skills: Annotated[
        str, typer.Option(help="Annotators' accuracies, comma-separated (0 = a spammer).")
    ] = "0.95,0.9,0.9,0.85,0.8,0.75,0.7,0.6,0",
    feature_set: Annotated[str, typer.Option(help="The project's feature set.")] = "compare",
    retrain_every: Annotated[int, typer.Option(min=1, help="Retrain after this many new labels.")] = 20,
    max_seconds: Annotated[float, typer.Option(min=10, help="Stop the annotators after this long.")] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the samples and the annotators.")] = 0,
    own_cluster: Annotated[
        bool,
        typer.Option(
            "--own-cluster/--server-cluster",
            help="Rounds on a Dask worker the bench starts at normal priority (serve --scheduler), "
            "or on the server's own lowest-priority local cluster.",
        ),
    ] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result here (JSON).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an earlier --json file.")] = False,
) -> None:
    """Campaign, then `model export` + `predict` on held-out clips: UAR against the reported score."""
    from listenloop.bench.model_export import run_model_export_bench

    check_outputs({"--json": json_out}, force)
    result = run_model_export_bench(
        folder,
        clips=clips,
        held=held,
        seeds=seeds,
        gold=gold,
        skills=comma_numbers(skills, "--skills", low=0, high=1),
        feature_set=feature_set,
        retrain_every=retrain_every,
        max_seconds=max_seconds,
        seed=seed,
        own_cluster=own_cluster,
        progress=lambda line: print(line, file=sys.stderr),
    )
    print(json.dumps(result, indent=1))
    if json_out is not None:
        write_json(json_out, result)
