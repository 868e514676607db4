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
