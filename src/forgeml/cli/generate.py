"""``forgeml generate RUN -n 64 [--label 3] [--seed S] -o samples/``: draw images from a generation run."""
from __future__ import annotations

from typing import Optional

import typer

from forgeml.cli import options as opt


def generate(
    run: opt.Run,
    n: int = typer.Option(64, "-n", "--number", help="images to draw (1 to 10000)"),
    label: Optional[str] = typer.Option(None, "--label", help="conditional models: the class to draw (default: every "
                                        "class in turn)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="noise seed (default: a fresh one, printed; the same seed "
                                       "draws the same images)"),
    output: str = typer.Option("samples", "--output", "-o", help="folder for the PNG files and grid.png (new or empty)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="write into a folder that holds files, replacing the PNG "
                                   "files a previous generate wrote there"),
):
    """Draw new images from a generation run: one PNG per image and a grid of them."""
    from forgeml import api

    result = api.generate(run, n, label=label, seed=seed, output=output, overwrite=overwrite)
    c, h, w = result["shape"]
    typer.echo(f"wrote {len(result['files'])} images ({h}x{w}, {c} channel{'s' if c > 1 else ''}) and "
               f"{result['grid']} to {output} (seed {result['seed']})")
