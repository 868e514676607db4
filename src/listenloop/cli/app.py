"""The Typer application that every command module registers itself on."""

import typer

app = typer.Typer(
    name="listenloop",
    help="Intelligent crowdsourcing of audio annotation: active learning, crowd quality control, simulation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks against the peers, measured in the same run.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
