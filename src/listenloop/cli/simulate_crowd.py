"""`listenloop simulate-crowd`: how many answers per item each redundancy policy needs, and its accuracy."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from listenloop.cli.app import app
from listenloop.errors import ListenloopError


@app.command("simulate-crowd")
def simulate_crowd(
    answers: Annotated[Path, typer.Option("--answers", help="Real answers: item,worker,label.")],
    truth: Annotated[Path, typer.Option("--truth", help="Expert labels: item,truth.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for summary.json, report.md and the plot.")],
    policy: Annotated[
        list[str], typer.Option("--policy", help="fixed:K or dynamic:min=M,max=N,tau=T (repeatable).")
    ],
    runs: Annotated[int, typer.Option(help="Runs per policy (answer orders or simulated crowds).")] = 20,
    mode: Annotated[
        str, typer.Option(help="replay (real answers) or simulate (a calibrated crowd).")
    ] = "replay",
    trust: Annotated[
        str | None,
        typer.Option(
            help="What policies know of workers (from the answers, no truth): ds (Dawid-Skene "
            "confusions and prior), skills (Dawid-Skene skills as one-coin accuracies) or none. "
            "Default: ds for classes, none for multilabel and continuous."
        ),
    ] = None,
    task: Annotated[
        str,
        typer.Option(
            help="classification, multilabel ('a|b' answers: exact tag sets) or continuous (ratings: "
            "mean absolute error); the last two replay only, with the platform's tag and rating rules."
        ),
    ] = "classification",
    seed: Annotated[int, typer.Option(help="Seed of answer orders and crowds.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an earlier result in --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Compare redundancy policies on a real answers set: accuracy against answers used."""
    from listenloop.crowd.answers import read_answers
    from listenloop.crowd.redundancy import parse_policy
    from listenloop.sim.crowd_policies import compare_policies, read_truth
    from listenloop.sim.plots import plot_policies

    if (out / "summary.json").exists() and not force:
        raise ListenloopError(f"{out}/summary.json exists: choose another --out or pass --force")
    if runs < 1:
        raise ListenloopError(f"--runs must be at least 1, got {runs}")
    trust = trust or ("ds" if task == "classification" else "none")
    policies = {text: parse_policy(text) for text in policy}
    table = read_answers(answers)
    gold = read_truth(truth)
    result = compare_policies(
        table, gold, policies, runs=runs, mode=mode, trust=trust, seed=seed, progress=not quiet, task=task
    )
    out.mkdir(parents=True, exist_ok=True)
    command = "listenloop " + shlex.join(sys.argv[1:])
    summary = {
        "policies": result,
        "mode": mode,
        "trust": trust,
        "task": task,
        "runs": runs,
        "command": command,
    }
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    tmp.replace(out / "summary.json")
    plot_policies(
        result, out / "accuracy_vs_answers.png", title=f"{answers.parent.name}: {mode}, {runs} runs"
    )
    lines = [
        f"# Redundancy policies on {answers.parent.name} ({mode}, {runs} runs, trust: {trust})",
        "",
        "```",
        command,
        "```",
        "",
        "| policy | accuracy (mean ± std) | answers per item | items short of answers (mean per run) "
        "| low-agreement items (mean per run) |",
        "|---|---|---|---|---|",
    ]
    if task == "continuous":
        lines[-2] = lines[-2].replace("accuracy (mean ± std)", "mean absolute error (mean ± std)")
    for name, p in result.items():
        metric, value, std = (
            ("MAE", p["mae"], p["mae_std"]) if "mae" in p else ("accuracy", p["accuracy"], p["accuracy_std"])
        )
        lines.append(
            f"| {name} | {value:.4f} ± {std:.4f} | {p['answers_per_item']:.2f} "
            f"| {p['short_items']:.1f} | {p['low_agreement']:.1f} |"
        )
        print(f"{name:>36}: {metric} {value:.4f}  answers/item {p['answers_per_item']:.2f}")
    lines += ["", "![accuracy against answers](accuracy_vs_answers.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
