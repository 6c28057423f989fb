"""`forgeml playbook list | show ID | run ID`: the common questions, answered by experiments on real data."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Common questions about building AI products (中文 / English), each answered by an experiment "
                       "forgeml runs on bundled real data.", no_args_is_help=True)

Lang = typer.Option("en", "--lang", help="en or zh")


@app.command("list")
def list_(lang: str = Lang, topic: Optional[str] = typer.Option(None, "--topic", help="only this topic")):
    """The entries: id, topic and question."""
    from forgeml import playbook

    playbook.check_lang(lang)
    if topic is not None and topic not in playbook.topics():
        from forgeml.errors import ConfigError

        raise ConfigError(f"unknown topic {topic!r}; topics: {', '.join(playbook.topics())}")
    for e in playbook.all_entries(topic):
        typer.echo(f"{e.id:<20} {e.topic:<12} {e.text('question', lang)}")


@app.command()
def show(id: str = typer.Argument(..., help="entry id (forgeml playbook list)"), lang: str = Lang):
    """An entry's question, answer, the claim its experiment checks and the caveats."""
    from forgeml import playbook

    playbook.check_lang(lang)
    e = playbook.get(id)
    labels = {"en": ("Answer", "Claim checked", "Caveats"), "zh": ("回答", "检验的论断", "注意")}[lang]
    typer.echo(f"{e.text('question', lang)}\n\n{labels[0]}: {e.text('answer', lang)}\n\n{labels[1]}: "
               f"{e.text('claim', lang)}\n\n{labels[2]}: {e.text('caveats', lang)}\n\nforgeml playbook run {e.id}")


@app.command()
def run(id: str = typer.Argument(..., help="entry id (forgeml playbook list)"), lang: str = Lang,
        fast: bool = typer.Option(False, "--fast", help="a smaller experiment (seconds; the test suite's)"),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="folder for the evidence (default playbook/ID)")):
    """Run an entry's experiment: the answer, then what this run measured and whether it supports the claim."""
    from rich.console import Console
    from rich.table import Table

    from forgeml import playbook
    from forgeml.playbook.run import LABELS, cell, run_entry

    playbook.check_lang(lang)
    e = playbook.get(id)
    folder = out or Path("playbook") / e.id
    console = Console()
    console.print(f"[bold]{e.text('question', lang)}[/]\n{e.text('answer', lang)}\n")
    console.print(f"[dim]{LABELS[lang]['claim']}: {e.text('claim', lang)}[/]")
    _, ev = run_entry(e.id, fast, folder)
    table = Table(title=f"{LABELS[lang]['evidence']} ({ev.seconds:.0f} s{', --fast' if fast else ''})")
    for c in ev.columns:
        table.add_column(c)
    for row in ev.rows:
        table.add_row(*[cell(v) for v in row])
    console.print(table)
    verdict = LABELS[lang]["supported" if ev.supported else "not_supported"]
    console.print(f"[bold {'green' if ev.supported else 'red'}]{verdict}[/]: {ev.finding[lang]}")
    console.print(f"[dim]{LABELS[lang]['caveats']}: {e.text('caveats', lang)}[/]")
    console.print(f"wrote {folder}/{e.id}.json, {e.id}.en.md, {e.id}.zh.md" + "".join(f", {p}" for p in ev.plots))
