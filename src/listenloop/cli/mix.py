"""`listenloop mix`: an event-to-background-ratio regression dataset from an event dataset."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Annotated

import typer

from listenloop.cli.app import app


@app.command("mix")
def mix(
    events_dataset: Annotated[Path, typer.Argument(help="Event dataset folder (labels.csv: file,label).")],
    out: Annotated[Path, typer.Argument(help="Output folder: clips/*.wav, labels.csv, README.md.")],
    clips: Annotated[int, typer.Option(help="Number of clips to make.")] = 400,
    ebr_range: Annotated[
        str, typer.Option(help="LO,HI event-to-background ratio in dB, drawn uniformly per clip.")
    ] = "-20,20",
    background: Annotated[
        str, typer.Option(help="white|pink|brown|blue noise, events (other events looped) or mixed.")
    ] = "pink",
    duration: Annotated[float, typer.Option(help="Clip length in seconds.")] = 3.0,
    sample_rate: Annotated[int, typer.Option(help="Sample rate of the clips in Hz.")] = 16000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives identical files.")] = 0,
    background_dbfs: Annotated[
        str, typer.Option(help="LO,HI range of the background's RMS level in dBFS, drawn per clip.")
    ] = "-40,-20",
    force: Annotated[
        bool, typer.Option(help="Replace clips/, labels.csv and README.md in a non-empty OUT.")
    ] = False,
) -> None:
    """Mix events over a background at random event-to-background ratios; the ratio is the target."""
    from listenloop.audio.ebr_dataset import make_ebr_dataset, parse_range

    lo, hi = parse_range(ebr_range, "--ebr-range")
    level = parse_range(background_dbfs, "--background-dbfs")
    command = shlex.join(
        [
            "listenloop",
            "mix",
            str(events_dataset),
            str(out),
            "--clips",
            str(clips),
            f"--ebr-range={lo:g},{hi:g}",
            "--background",
            background,
            "--duration",
            f"{duration:g}",
            "--sample-rate",
            str(sample_rate),
            "--seed",
            str(seed),
            f"--background-dbfs={level[0]:g},{level[1]:g}",
        ]
    )
    start = time.perf_counter()
    summary = make_ebr_dataset(
        events_dataset,
        out,
        clips=clips,
        ebr_range=(lo, hi),
        background=background,
        duration=duration,
        sample_rate=sample_rate,
        seed=seed,
        background_dbfs=level,
        force=force,
        progress=clips >= 20,
        command=command,
    )
    elapsed = time.perf_counter() - start
    typer.echo(f"wrote {summary.clips} clips to {summary.out} in {elapsed:.1f} s")
