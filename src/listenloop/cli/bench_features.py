"""`listenloop bench`: placeholder until its module lands."""

from listenloop.cli.app import app, bench_app  # noqa: F401
