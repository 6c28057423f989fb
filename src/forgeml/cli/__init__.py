"""Command line: parse, call forgeml.api, print. No logic lives here; heavy imports happen inside commands.

options.py declares the options several commands share (once each); overrides.py turns --config, flags and --set
into a config dict; experiments.py and runs.py hold the commands; printing.py what they print.
"""
from __future__ import annotations

import os
from typing import List, Optional

import typer

from forgeml.cli import experiments, generate, playbook, runs, tune

app = typer.Typer(
    help="forgeml: from raw data to a trained, evaluated, tracked model on the compute you have.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command in (experiments.quickstart, experiments.train, runs.evaluate, runs.predict, runs.export, runs.compress,
                runs.serve, runs.profile, experiments.cv, tune.tune, runs.explain, experiments.federate, runs.datasets, runs.tasks,
                generate.generate):
    app.command()(command)
app.add_typer(playbook.app, name="playbook")


def main(argv: Optional[List[str]] = None) -> None:
    """Typer handles usage errors itself (exit 2 with usage); forgeml's own errors become one line + exit 2."""
    import warnings

    from forgeml.errors import ForgeMLError

    follower = os.environ.get("RANK", "0") != "0"  # a data-parallel worker other than rank 0: rank 0 speaks for all
    with warnings.catch_warnings():
        if follower:
            warnings.simplefilter("ignore")
        shown = warnings.showwarning

        def plain(message, category, filename, lineno, file=None, line=None):  # forgeml's own: one line, no source path
            if f"{os.sep}forgeml{os.sep}" in str(filename):
                typer.echo(f"warning: {message}", err=True)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = plain
        try:
            app(args=argv, prog_name="forgeml")
        except ForgeMLError as exc:
            if not follower:
                typer.echo(f"error: {exc}", err=True)
            raise SystemExit(exc.exit_code) from None
