"""`listenloop features DATASET --set NAME`: extract (or read from the cache) a dataset's features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from listenloop.cli.app import app
from listenloop.errors import ListenloopError


@app.command()
def features(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder with labels.csv (a 'file' column).")],
    feature_set: Annotated[
        str, typer.Option("--set", help="Feature set: compare (default), egemaps, logmel, mfcc or pann.")
    ] = "compare",
    checkpoint: Annotated[
        Path | None, typer.Option(help="pann: the CNN14 checkpoint file to load (nothing is downloaded).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes (default: the CPUs; 1, or few files, computes in this process)."),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Address of a running Dask scheduler to compute on instead.")
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Feature cache folder (default: $LISTENLOOP_CACHE or ~/.cache/listenloop/features)."
        ),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the cache.")] = False,
    out: Annotated[
        Path | None, typer.Option(help="Write the features here: .csv (with a 'file' column) or .npy.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out file.")] = False,
) -> None:
    """Extract the features of every file of DATASET, reusing cached ones, and print the time it took."""
    from listenloop.features import get_extractor
    from listenloop.features.extraction import extract_features, files_dataset

    if workers is not None and workers < 1:
        raise ListenloopError(f"--workers must be at least 1 (got {workers})")
    if out is not None and out.suffix.lower() not in (".csv", ".npy"):
        raise ListenloopError(f"--out {out}: use a .csv or .npy file")
    if out is not None and out.exists() and not force:
        raise ListenloopError(f"--out {out} exists: choose another file or pass --force")
    extractor = get_extractor(feature_set, **({"checkpoint": str(checkpoint)} if checkpoint else {}))
    ds = files_dataset(dataset)
    table = extract_features(
        ds,
        extractor,
        workers=workers,
        scheduler=scheduler,
        cache_dir=cache_dir,
        use_cache=not no_cache,
        progress=progress,
    )
    n_ok, n_all = len(table), len(ds)
    what = f"{n_ok} files" if n_ok == n_all else f"{n_ok} of {n_all} files"
    print(
        f"extracted {what} ({table.cached} from cache, {table.computed} computed, "
        f"{len(table.skipped)} skipped) with {table.extractor} in {table.seconds:.2f} s"
    )
    if out is not None:
        try:
            written = table.save(out)
        except OSError as exc:
            raise ListenloopError(f"--out {out}: {exc.strerror or exc}") from None
        print(f"wrote {', '.join(str(p) for p in written)}")
