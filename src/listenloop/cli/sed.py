"""`listenloop sed …`: sound event detection from crowdsourced weak labels (004_)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from listenloop.cli.app import app
from listenloop.errors import ListenloopError

sed_app = typer.Typer(help="Sound event detection from crowdsourced weak labels.", no_args_is_help=True)
app.add_typer(sed_app, name="sed")

DEFAULT_BANK = Path("../shared/data/dcase2016-office")


@sed_app.command("experiment")
def experiment(
    out: Annotated[Path, typer.Option(help="Output folder: summary.json, report.md, plots, label files.")],
    quick: Annotated[bool, typer.Option(help="Small settings (a few minutes).")] = False,
    events: Annotated[
        Path, typer.Option(help="The event bank (DCASE 2016 office: labels.csv + events/).")
    ] = DEFAULT_BANK,
    seed: Annotated[int, typer.Option(help="Random seed of soundscapes, crowd and training.")] = 0,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Training epochs per set-up (default: by size).")
    ] = None,
    recordings: Annotated[int | None, typer.Option(min=2, help="Soundscapes (default: by size).")] = None,
    folds: Annotated[
        int | None, typer.Option(min=2, help="Cross-validation folds (default: by size).")
    ] = None,
) -> None:
    """Soundscapes, a simulated crowd, soft labels and the CRNN in three set-ups, scored against the truth."""
    from dataclasses import replace

    from listenloop.sed.experiment import QUICK, Settings, check_bank, run

    check_bank(events)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ListenloopError("sed experiment needs torch: pip install 'listenloop[deep]'") from None
    settings = QUICK if quick else Settings()
    changes = {
        k: v
        for k, v in {"seed": seed, "epochs": epochs, "recordings": recordings, "folds": folds}.items()
        if v is not None
    }
    settings = replace(settings, **changes)
    if settings.folds > settings.recordings:
        raise ListenloopError(f"--folds {settings.folds}: more folds than recordings ({settings.recordings})")
    run(out, settings, events, log=lambda m: typer.echo(m, err=True))


@sed_app.command("labels")
def labels(
    answers: Annotated[
        Path, typer.Argument(help="CSV recording,onset,worker,label (label: a|b, empty: none).")
    ],
    out: Annotated[
        Path, typer.Option(help="Folder for soft/NAME.txt and hard/NAME.txt (MAESTRO-Real style).")
    ],
    classes: Annotated[
        str | None, typer.Option(help="Comma-separated classes (default: those named).")
    ] = None,
    weights: Annotated[
        str, typer.Option(help="mace (competence-weighted, 004_) or equal (plain share).")
    ] = "mace",
    segment: Annotated[float, typer.Option(min=0.001, help="Annotation segment length, seconds.")] = 10.0,
    hop: Annotated[float, typer.Option(min=0.001, help="Seconds between segment onsets.")] = 1.0,
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Hard labels: soft above this.")] = 0.5,
    force: Annotated[bool, typer.Option(help="Write into a non-empty OUT.")] = False,
) -> None:
    """Weak answers on overlapping segments -> strong soft and hard labels per recording (004_ eq. 1)."""
    from listenloop.sed import maestro
    from listenloop.sed.labels import crowd_soft_labels, read_segment_answers

    if out.exists() and any(out.iterdir()) and not force:
        raise ListenloopError(f"--out {out}: exists and is not empty (use --force)")
    table = read_segment_answers(answers)
    names = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    soft, _ = crowd_soft_labels(table, names, weights, segment, hop)
    written = maestro.export(soft, out, threshold)
    typer.echo(f"wrote {len(written) // 2} recordings' soft and hard labels to {out}")


@sed_app.command("score")
def score(
    reference: Annotated[Path, typer.Argument(help="Folder of reference hard-label files (NAME.txt).")],
    estimate: Annotated[Path, typer.Argument(help="Folder of estimated hard-label files (same names).")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the scores here (JSON).")] = None,
) -> None:
    """Segment-based (1 s) F1 and error rate of label files, micro-averaged and per class (sed_eval)."""
    from listenloop.cli.app import write_json
    from listenloop.sed.labels import score_folders

    scores, classes = score_folders(reference, estimate)
    typer.echo(
        f"F1 {scores.f1:.4f}  ER {scores.er:.4f}  ({scores.classes_detected}/{len(classes)} classes detected)"
    )
    for c in classes:
        typer.echo(
            f"  {c}: F1 {scores.class_f1[c]:.4f}  ER {scores.class_er[c]:.4f}  ({scores.class_support[c]} s)"
        )
    if json_out is not None:
        class_er = {c: (None if v != v else v) for c, v in scores.class_er.items()}  # NaN: no reference
        data = {"f1": scores.f1, "er": scores.er, "class_f1": scores.class_f1, "class_er": class_er}
        write_json(json_out, data)
