"""Command line: `listenloop COMMAND`. Commands only parse arguments and call the library."""

from __future__ import annotations

import sys

from listenloop.cli import bench_features as _bench_features  # noqa: F401
from listenloop.cli import bench_query as _bench_query  # noqa: F401

# Importing a command module registers its commands on `app` / `bench_app`.
from listenloop.cli import features as _features  # noqa: F401
from listenloop.cli import mix as _mix  # noqa: F401
from listenloop.cli import simulate as _simulate  # noqa: F401
from listenloop.cli.app import app, bench_app
from listenloop.errors import ListenloopError

__all__ = ["app", "bench_app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one `error: ...` line on stderr and exit code 2.

    `--debug` anywhere on the command line shows the full traceback instead.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    try:
        app(args=args, standalone_mode=False)
    except ListenloopError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click usage errors and unexpected failures
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            print("error: aborted", file=sys.stderr)
            sys.exit(1)
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        sys.exit(1)
