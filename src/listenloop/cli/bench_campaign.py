"""`listenloop bench campaign`: a whole campaign through the HTTP API with simulated annotators."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from listenloop.cli.app import bench_app, check_outputs, comma_numbers
from listenloop.errors import ListenloopError


@bench_app.command("campaign")
def bench_campaign(
    folder: Annotated[
        Path, typer.Argument(help="A folder of clips with labels.csv (file,label): the truth.")
    ],
    limit: Annotated[int | None, typer.Option(min=10, help="Use a random sample of this many clips.")] = None,
    skills: Annotated[
        str,
        typer.Option(help="Annotators' accuracies, comma-separated (0 = a spammer who answers at random)."),
    ] = "0.95,0.9,0.9,0.85,0.8,0.75,0.7,0.6,0",
    positive: Annotated[
        str | None,
        typer.Option(help="A binary project: these classes (comma-separated) against the rest."),
    ] = None,
    seeds: Annotated[int, typer.Option(min=0, help="Seed labels per class the owner uploads.")] = 2,
    gold: Annotated[int, typer.Option(min=0, help="Control questions per class.")] = 1,
    feature_set: Annotated[str, typer.Option(help="The project's feature set.")] = "compare",
    retrain_every: Annotated[int, typer.Option(min=1, help="Retrain after this many new labels.")] = 20,
    max_seconds: Annotated[float, typer.Option(min=10, help="Stop the annotators after this long.")] = 900,
    think: Annotated[
        float, typer.Option(min=0, help="Each annotator's pause after an answer, seconds.")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the samples and the annotators.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result here (JSON).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an earlier --json file.")] = False,
    screenshots: Annotated[
        Path | None,
        typer.Option(
            help="Save the dashboard, labelling page and clip browser here during the campaign "
            "(needs Chromium)."
        ),
    ] = None,
    screenshot_after: Annotated[
        float, typer.Option(min=0, help="Seconds into the crowd's work to take the screenshots.")
    ] = 60.0,
    task: Annotated[
        str,
        typer.Option(
            help="classification (FOLDER: clips with labels.csv), or multilabel / continuous: FOLDER is "
            "an event dataset (file,label) mixed into tagged clips or clips rated by their "
            "event-to-background ratio (bench/campaign_tasks.py)."
        ),
    ] = "classification",
    clips: Annotated[int, typer.Option(min=20, help="multilabel/continuous: clips to mix.")] = 200,
    tags: Annotated[int, typer.Option(min=2, help="multilabel: tags (the dataset's first classes).")] = 5,
    redundancy: Annotated[
        str,
        typer.Option(help="The project's redundancy as MIN,MAX,TAU (5,5,1: a fixed 5 answers per clip)."),
    ] = "2,7,0.95",
    queue: Annotated[
        str | None,
        typer.Option(
            help="The project's queue: redundancy (default) or relabel_or_new (engine/learning/relabel.py)."
        ),
    ] = None,
    budget: Annotated[
        int | None, typer.Option(min=1, help="The project's budget: answers of every kind (default: none).")
    ] = None,
    inline: Annotated[
        bool,
        typer.Option(
            "--inline",
            help="Run the campaign in this process through the engine (deterministic; learning rounds "
            "inline whenever due) instead of over HTTP (bench/inline_campaign.py).",
        ),
    ] = False,
    heldout: Annotated[
        int,
        typer.Option(
            min=0,
            help="--inline: score the final labels' model on this many clips of FOLDER outside the campaign.",
        ),
    ] = 0,
    rating_tolerance: Annotated[
        float | None, typer.Option(help="continuous: the project's rating_tolerance (default: its own).")
    ] = None,
) -> None:
    """Label a folder through the API with simulated annotators: accuracy, answers used, model scores."""
    from listenloop.bench.campaign import format_result, result_as_json, run_campaign

    check_outputs({"--json": json_out}, force)
    if task != "classification" and positive is not None:
        raise ListenloopError(f"--positive makes a binary classification project, not --task {task}")
    if task != "classification":
        _task_campaign(
            task, folder, clips, tags, skills, seeds, gold, redundancy, rating_tolerance, feature_set,
            retrain_every, max_seconds, seed, json_out,
        )  # fmt: skip
        return
    if screenshots is not None:
        from listenloop.bench.screenshots import chromium_path

        chromium_path()  # a missing browser is an error now, not after the campaign
    skill_values = tuple(comma_numbers(skills, "--skills", low=0.0, high=1.0))
    classes = None
    if positive is not None:
        classes = [c.strip() for c in positive.split(",") if c.strip()]
        if not classes:
            raise ListenloopError("--positive: name at least one class (e.g. --positive 0 or --positive 3,8)")
    common: dict[str, Any] = {
        "skills": skill_values,
        "positive": classes,
        "redundancy": _redundancy(redundancy),
        "seeds": seeds,
        "gold": gold,
        "limit": limit,
        "feature_set": feature_set,
        "retrain_every": retrain_every,
        "seed": seed,
        "queue": queue,
        "budget": budget,
        "progress": lambda line: print(line, file=sys.stderr, flush=True),
    }
    if inline:
        from listenloop.bench.inline_campaign import run_inline_campaign

        result = run_inline_campaign(folder, heldout=heldout, **common)
    else:
        result = run_campaign(
            folder,
            max_seconds=max_seconds,
            think=think,
            screenshots=screenshots,
            screenshot_after=screenshot_after,
            **common,
        )
    print(format_result(result))
    if json_out is not None:
        json_out.write_text(result_as_json(result) + "\n")


def _redundancy(text: str) -> dict[str, float]:
    """`--redundancy MIN,MAX,TAU` as the project's redundancy object."""
    parts = comma_numbers(text, "--redundancy", low=0.0)
    if len(parts) != 3 or parts[0] != int(parts[0]) or parts[1] != int(parts[1]):
        raise ListenloopError(f"--redundancy: expected MIN,MAX,TAU (e.g. 2,7,0.95), got {text!r}")
    return {"min": int(parts[0]), "max": int(parts[1]), "tau": parts[2]}


def _task_campaign(
    task: str,
    folder: Path,
    clips: int,
    tags: int,
    skills: str,
    seeds: int,
    gold: int,
    redundancy: str,
    rating_tolerance: float | None,
    feature_set: str,
    retrain_every: int,
    max_seconds: float,
    seed: int,
    json_out: Path | None,
) -> None:
    """`--task multilabel|continuous`: mixtures of `folder`'s events (bench.campaign_tasks)."""
    import json
    from dataclasses import asdict

    from listenloop.bench.campaign_tasks import format_task_result, run_task_campaign

    result = run_task_campaign(
        task,
        folder,
        clips=clips,
        tags=tags,
        skills=tuple(comma_numbers(skills, "--skills", low=0.0, high=1.0)),
        seeds=seeds,
        gold=gold,
        redundancy=_redundancy(redundancy),
        rating_tolerance=rating_tolerance,
        feature_set=feature_set,
        retrain_every=retrain_every,
        max_seconds=max_seconds,
        seed=seed,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_task_result(result))
    if json_out is not None:
        json_out.write_text(json.dumps(asdict(result), indent=1) + "\n")
