"""The Typer application that every command module registers itself on."""

import json
from pathlib import Path

import typer

from listenloop.errors import ListenloopError

app = typer.Typer(
    name="listenloop",
    help="Intelligent crowdsourcing of audio annotation: active learning, crowd quality control, simulation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks against the peers, measured in the same run.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def write_json(path: Path, data: object, option: str = "--json") -> None:
    """Write `data` as JSON to `path`; a path that cannot be written is a user error."""
    try:
        path.write_text(json.dumps(data, indent=1) + "\n")
    except OSError as exc:
        raise ListenloopError(f"{option} {path}: {exc.strerror or exc}") from None


def check_outputs(outputs: dict[str, Path | None], force: bool) -> None:
    """Before any work: each output's folder exists, and no earlier file is overwritten without --force."""
    for option, path in outputs.items():
        if path is None:
            continue
        if not path.parent.is_dir():
            raise ListenloopError(f"{option} {path}: folder {path.parent} does not exist")
        if path.exists() and not force:
            raise ListenloopError(f"{option} {path} exists: choose another file or pass --force")


def comma_numbers(
    text: str, option: str, *, cast: type = float, low: float | None = None, high: float | None = None
) -> list:
    """`"0.5,0"` -> [0.5, 0.0]: numbers of type `cast` within [low, high], or a clear error."""
    try:
        values = [cast(part.strip().replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ListenloopError(f"{option}: expected comma-separated numbers, got {text!r}") from None
    bounds = f"in [{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
    if not values or any((low is not None and v < low) or (high is not None and v > high) for v in values):
        raise ListenloopError(f"{option}: expected numbers {bounds}, got {text!r}")
    return values
