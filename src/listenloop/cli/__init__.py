"""Command line: `listenloop COMMAND`. Commands only parse arguments and call the library."""

from __future__ import annotations

import sys

import typer

from listenloop import __version__
from listenloop.cli import aggregate as _aggregate  # noqa: F401
from listenloop.cli import bench_aggregate as _bench_aggregate  # noqa: F401
from listenloop.cli import bench_campaign as _bench_campaign  # noqa: F401
from listenloop.cli import bench_features as _bench_features  # noqa: F401
from listenloop.cli import bench_import as _bench_import  # noqa: F401
from listenloop.cli import bench_model as _bench_model  # noqa: F401
from listenloop.cli import bench_query as _bench_query  # noqa: F401
from listenloop.cli import bench_round as _bench_round  # noqa: F401
from listenloop.cli import bench_serve as _bench_serve  # noqa: F401
from listenloop.cli import bench_similar as _bench_similar  # noqa: F401
from listenloop.cli import bulk_import as _bulk_import  # noqa: F401

# Importing a command module registers its commands on `app` / `bench_app`.
from listenloop.cli import demo as _demo  # noqa: F401
from listenloop.cli import features as _features  # noqa: F401
from listenloop.cli import interop as _interop  # noqa: F401
from listenloop.cli import mix as _mix  # noqa: F401
from listenloop.cli import model as _model  # noqa: F401
from listenloop.cli import sed as _sed  # noqa: F401
from listenloop.cli import serve as _serve  # noqa: F401
from listenloop.cli import simulate as _simulate  # noqa: F401
from listenloop.cli import simulate_crowd as _simulate_crowd  # noqa: F401
from listenloop.cli import user as _user  # noqa: F401
from listenloop.cli.app import app, bench_app
from listenloop.errors import ListenloopError

__all__ = ["app", "bench_app", "main"]


def _usage_message(exc: Exception) -> str:
    """`--initial: not a valid integer: 'abc'` from a click/Typer usage error."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    param = getattr(exc, "param", None)
    opts = getattr(param, "opts", None)
    if opts and opts[0] not in message:
        return f"{opts[0]}: {message}"
    return message


def main(argv: list[str] | None = None) -> None:
    """Entry point: bad input becomes one `error: ...` line on stderr and exit code 2.

    `--debug` anywhere on the command line shows the full traceback instead.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    if not args:
        app(args=["--help"], standalone_mode=False)
        return
    if args in (["--version"], ["-V"]):
        print(f"listenloop {__version__}")
        return
    try:
        app(args=args, standalone_mode=False)
    except ListenloopError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except (SystemExit, typer.Exit) as exc:
        sys.exit(getattr(exc, "code", getattr(exc, "exit_code", 0)))
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        if debug:
            raise
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):  # click/Typer usage errors
            print(f"error: {_usage_message(exc)} (see --help)", file=sys.stderr)
            sys.exit(2)
        print(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        sys.exit(1)
