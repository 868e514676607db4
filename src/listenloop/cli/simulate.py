"""`listenloop simulate`: pool- or stream-based active learning with the dataset's labels as the oracle."""

from __future__ import annotations

import csv
import json
import os
import shlex
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from listenloop.cli.app import app
from listenloop.errors import ListenloopError

if TYPE_CHECKING:
    from listenloop.sim.experiment import ExperimentResult


class Task(StrEnum):
    classification = "classification"
    regression = "regression"


def _csv_list(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


DEFAULT_WARMUP = 1  # one random batch before AL: uncertainty from 30 labels is unreliable (BENCHMARKS.md)
DEFAULT_FEATURES = "compare"  # findings: ComParE beats eGeMAPS everywhere (FSDD full pool 0.83 vs 0.50)


@app.command()
def simulate(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder with labels.csv (file + label columns).")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for summary.json, learning_curve.png, report.md.")
    ],
    label_column: Annotated[str, typer.Option(help="Column with the target.")] = "label",
    group_column: Annotated[
        str | None, typer.Option(help="Column of groups (e.g. speaker) kept apart.")
    ] = None,
    features: Annotated[
        str, typer.Option(help="Feature set: compare, egemaps, logmel, mfcc, pann.")
    ] = DEFAULT_FEATURES,
    checkpoint: Annotated[
        Path | None, typer.Option(help="pann: the CNN14 checkpoint file to load (nothing is downloaded).")
    ] = None,
    learner: Annotated[
        str | None, typer.Option(help="svm, logreg, rf (classification); svr, rf, ridge.")
    ] = None,
    learner_params: Annotated[
        str | None, typer.Option(help="Learner parameters, e.g. 'C=0.1,kernel=rbf'.")
    ] = None,
    strategies: Annotated[str, typer.Option(help="Comma-separated strategies; random is the baseline.")] = (
        "random,auto"
    ),
    initial: Annotated[int, typer.Option(help="Random labels to start from.")] = 30,
    batch: Annotated[int, typer.Option(help="Clips asked per iteration.")] = 30,
    iterations: Annotated[
        int, typer.Option(help="Query iterations (stops earlier at --budget/--target).")
    ] = 20,
    runs: Annotated[int, typer.Option(help="Runs per split, each with its own initial set.")] = 10,
    folds: Annotated[int | None, typer.Option(help="K-fold CV (group-wise with --group-column).")] = None,
    test_groups: Annotated[
        str | None, typer.Option(help="Groups held out for testing, e.g. '03,08'.")
    ] = None,
    test_fraction: Annotated[
        float | None, typer.Option(help="Share held out for testing (default 0.2).")
    ] = None,
    task: Annotated[Task, typer.Option(help="classification or regression.")] = Task.classification,
    positive: Annotated[
        str | None, typer.Option(help="Classes that form the positive side of a binary task.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of splits, initial sets and learners.")] = 0,
    stream: Annotated[
        bool, typer.Option("--stream", help="Stream-based: label the best half of each buffer.")
    ] = False,
    buffer: Annotated[int | None, typer.Option(help="Stream buffer size (default 2 × batch).")] = None,
    subset: Annotated[
        int | None, typer.Option(help="Score only a random subset of this many pool clips.")
    ] = None,
    budget: Annotated[int | None, typer.Option(help="Stop when this many labels are used.")] = None,
    target: Annotated[float | None, typer.Option(help="Stop when the test metric reaches this.")] = None,
    upsample: Annotated[bool, typer.Option("--upsample", help="Balance classes by upsampling L.")] = False,
    warmup: Annotated[
        int, typer.Option(help="First iterations asked at random before a strategy takes over (T0).")
    ] = DEFAULT_WARMUP,
    cold_start: Annotated[
        str,
        typer.Option(
            help="random (a random initial set, then --warmup random iterations) or kmeans (the "
            "platform's: k-means-diverse clips until every class has a label)."
        ),
    ] = "random",
    passive_share: Annotated[
        float, typer.Option(help="Share of each batch drawn at random (the platform's passive arm).")
    ] = 0.0,
    centre: Annotated[
        float | None, typer.Option(help="regression_binary_confidence centre (default median).")
    ] = None,
    ssl_threshold: Annotated[float, typer.Option(help="self_training: pseudo-label threshold T_SSL.")] = 0.95,
    hc_threshold: Annotated[float, typer.Option(help="alternating_confidence: high confidence T_HC.")] = 0.85,
    hc_every: Annotated[
        int, typer.Option(help="alternating_confidence: a high-confidence query every k.")
    ] = 10,
    dal_theta: Annotated[float, typer.Option(help="dal: pseudo-label confidence threshold Θ.")] = 0.5,
    dal_alpha: Annotated[float, typer.Option(help="dal: draw weight α of pseudo-labels.")] = 0.01,
    dal_t0: Annotated[int, typer.Option(help="dal: first iterations without queries (T0).")] = 3,
    dal_masks: Annotated[int, typer.Option(help="dal: sampled dropout masks |D|.")] = 128,
    workers: Annotated[
        int | None, typer.Option(help="Feature-extraction workers (local Dask cluster).")
    ] = None,
    scheduler: Annotated[str | None, typer.Option(help="Address of an existing Dask scheduler.")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Feature cache folder.")] = None,
    jobs: Annotated[
        int | None, typer.Option(help="Runs in parallel processes (default: one per CPU).")
    ] = None,
    recommend: Annotated[
        bool,
        typer.Option(
            "--recommend",
            help="Print which strategy to use, in plain words (the dry run's verdict).",
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an earlier result in --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Compare query strategies on a labelled dataset: learning curves, labels saved, p-values."""
    # Imported here, not at the top: `listenloop --help` and the other commands start faster.
    import numpy as np

    from listenloop.datasets import load_dataset
    from listenloop.features import get_extractor
    from listenloop.features.extraction import extract_features
    from listenloop.learners import describe_learner, parse_params
    from listenloop.sim.experiment import ExperimentConfig, run_experiment, validate_config
    from listenloop.sim.loop import LoopConfig
    from listenloop.sim.splits import make_splits
    from listenloop.sim.summary import summarise

    if (out / "summary.json").exists() and not force:
        raise ListenloopError(f"{out}/summary.json exists: choose another --out or pass --force")
    for name, value in (("--initial", initial), ("--batch", batch), ("--runs", runs)):
        if value < 1:
            raise ListenloopError(f"{name} must be at least 1, got {value}")
    if iterations < 0:
        raise ListenloopError(f"--iterations must be at least 0, got {iterations}")
    names = _csv_list(strategies)
    if not names:
        raise ListenloopError("--strategies names no strategy")
    if recommend and ("random" not in names or task is not Task.classification):
        raise ListenloopError("--recommend compares classification strategies with random: add random")
    strategy_params = {
        "regression_binary_confidence": {"centre": centre},
        "self_training": {"threshold": ssl_threshold},
        "alternating_confidence": {"high_threshold": hc_threshold, "every": hc_every},
        "dal": {"theta": dal_theta, "alpha": dal_alpha, "t0": dal_t0, "masks": dal_masks},
    }
    config = ExperimentConfig(
        strategies=names,
        task=task.value,
        learner=learner,
        learner_params=parse_params(learner_params),
        upsample=upsample,
        runs=runs,
        seed=seed,
        loop=LoopConfig(
            initial=initial,
            batch=batch,
            iterations=iterations,
            budget=budget,
            target=target,
            subset=subset,
            stream=stream,
            buffer=buffer,
            warmup=warmup,
            cold_start=cold_start,
            passive_share=passive_share,
        ),
        strategy_params={k: v for k, v in strategy_params.items() if k in names},
    )
    ds = load_dataset(dataset, label_column, group_column, task.value, _csv_list(positive) or None)

    def splits_of(labels: Any, groups: Any) -> list:
        return make_splits(
            labels,
            groups,
            task.value,
            folds=folds,
            test_groups=_csv_list(test_groups) or None,
            test_fraction=test_fraction,
            seed=seed,
        )

    # Every check that needs no features runs first: a typo must not cost a whole extraction.
    classes = len(set(ds.labels.tolist())) if task is Task.classification else None
    validate_config(config, classes)
    extractor = get_extractor(features, **({"checkpoint": str(checkpoint)} if checkpoint else {}))
    splits_of(ds.labels, ds.groups)
    started = time.perf_counter()

    def extract(what: Any) -> Any:
        return extract_features(
            ds,
            what,
            workers=workers,
            scheduler=scheduler,
            cache_dir=cache_dir,
            progress=not quiet,
            log=lambda m: print(m, file=sys.stderr),
        )

    table = extract(extractor)
    X = table.X
    kept = np.asarray(table.kept)
    # strategies with features of their own (MAL: the mfcc set's functionals and Gaussians)
    own_sets = {n: own_feature_set(n) for n in names if own_feature_set(n)}
    for name, fset in own_sets.items():
        other = extract(fset)
        both = np.intersect1d(kept, other.kept)
        X = np.asarray(X)[np.searchsorted(kept, both)]
        for earlier in own_sets:
            if "table" in config.strategy_params.get(earlier, {}):
                prev = config.strategy_params[earlier]["table"]
                config.strategy_params[earlier]["table"] = prev[np.searchsorted(kept, both)]
        config.strategy_params.setdefault(name, {})["table"] = np.asarray(other.X)[
            np.searchsorted(np.asarray(other.kept), both)
        ]
        kept = both
    ds = ds.subset(kept)
    if len(ds) < 2:
        raise ListenloopError(f"{dataset}: fewer than two usable clips")
    splits = splits_of(ds.labels, ds.groups)
    result = run_experiment(
        X, ds.labels, splits, config, progress=not quiet, jobs=jobs or os.cpu_count() or 1
    )
    summary = summarise(result, str(dataset))
    if recommend:
        from listenloop.sim.verdict import verdict

        summary["verdict"] = verdict(result, len(ds))
    command = "listenloop " + shlex.join(sys.argv[1:])
    learner_text = describe_learner(learner, task.value, config.learner_params)
    summary["config"] = {
        "command": command,
        "features": features,
        "own_features": own_sets,
        "learner": learner_text,
        "warmup": warmup,
        "cold_start": cold_start,
        "passive_share": passive_share,
        "clips": len(ds),
        "skipped": len(table.skipped),
        "splits": result.splits,
        "seconds": round(time.perf_counter() - started, 1),
    }
    details = {
        "clips": f"{len(ds)} ({len(table.skipped)} skipped)",
        "features": features
        + "".join(f"; {n} uses the {f} set (its method's features)" for n, f in own_sets.items()),
        "learner": learner_text,
        "warm-up": f"the first {warmup} iteration(s) ask at random (all strategies share them"
        + (
            ", except dal (T0 iterations without queries) and mal/mal_pann (medoids from the start))"
            if set(names) & {"dal", "mal", "mal_pann"}
            else ")"
        ),
        "cold start": "k-means-diverse clips until every class has a label (the platform's)"
        if cold_start == "kmeans"
        else "a random initial set",
        "splits": ", ".join(result.splits),
    }
    if passive_share:
        details["passive arm"] = f"{passive_share:.0%} of each batch drawn at random"
    write_outputs(out, summary, result, command, details, clip_names=ds.files)
    print_summary(summary)
    if recommend:
        print(f"recommended: {summary['verdict']['recommended']}")
        print(summary["verdict"]["text"])


def own_feature_set(name: str) -> str | None:
    """The feature set a strategy runs on instead of --features (MAL: mfcc), or None."""
    from listenloop.strategies.registry import STRATEGIES

    return getattr(STRATEGIES.get(name), "feature_set", None)


def write_outputs(
    out: Path,
    summary: dict,
    result: ExperimentResult,
    command: str,
    details: dict,
    clip_names: list[str] | None = None,
) -> None:
    """summary.json (atomically), runs.csv, learning_curve.png and report.md in `out`; sources.csv (the
    strategy that supplied each clip) when a strategy logs it (auto)."""
    from listenloop.sim.plots import plot_learning_curves
    from listenloop.sim.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    tmp.replace(out / "summary.json")
    with open(out / "runs.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        metrics = list(result.runs[0].curve.scores[0]) if result.runs else []
        writer.writerow(["strategy", "split", "run", "step", "labels", *metrics])
        for r in result.runs:
            for step, (n, sc) in enumerate(zip(r.curve.labels, r.curve.scores, strict=True)):
                writer.writerow([r.strategy, r.split, r.run, step, n, *(f"{sc[m]:.6f}" for m in metrics)])
    sourced = [r for r in result.runs if any("auto_clip_sources" in note for note in r.curve.notes)]
    if sourced:  # which strategy supplied each clip (auto); the shares per iteration are in summary.json
        with open(out / "sources.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["strategy", "split", "run", "step", "clip", "source"])
            for r in sourced:
                asked = r.curve.queried[r.curve.labels[0] :]
                at = 0
                for step, note in enumerate(r.curve.notes):
                    names = note.get("auto_clip_sources")
                    size = r.curve.labels[step + 1] - r.curve.labels[step]
                    for i in range(size):
                        src = names[i] if names is not None and i < len(names) else "warmup"
                        clip = clip_names[asked[at]] if clip_names is not None else asked[at]
                        writer.writerow([r.strategy, r.split, r.run, step, clip, src])
                        at += 1
    plot_learning_curves(summary, out / "learning_curve.png")
    write_report(summary, out / "report.md", command=command, details=details)


def print_summary(summary: dict) -> None:
    """A few lines on stdout: the full-pool score and each strategy, best AULC first, and what the
    areas and p-values mean (the shared label range; the corrected test and why)."""
    print(f"full pool {summary['metric']} {summary['full_pool_score']:.3f}")
    if "aulc_range" in summary:
        lo, hi = summary["aulc_range"]
        print(f"AULC over {lo}..{hi} labels (the range every strategy covers)")
    for name, st in sorted(summary["strategies"].items(), key=lambda kv: -kv[1]["aulc"]):
        p = st["p_value_vs_random"]
        need = st["labels_to_passive_best"]
        print(
            f"{name:>24}: AULC {st['aulc']:.4f}  final {st['mean'][-1]:.3f}  labels to random's best "
            f"{'not reached' if need is None else need}  p {'-' if p is None else f'{p:.4f}'}"
        )
        if st.get("stopped", {}).get("pool"):
            print(f"{'':>24}  note: the pool ran out early in {st['stopped']['pool']} runs", file=sys.stderr)
    if summary.get("test"):
        print(f"p: {summary['test']['caveat']}")
