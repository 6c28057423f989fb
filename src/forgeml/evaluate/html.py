"""HTML building blocks shared by every report page (run report, profile, explanations): tables, embedded PNGs, the
page shell with its stylesheet (a file beside this module)."""
from __future__ import annotations

import base64
import html
from functools import lru_cache
from pathlib import Path

ASSETS = Path(__file__).parent / "assets"


@lru_cache(maxsize=None)
def css() -> str:
    return (ASSETS / "report.css").read_text()


def fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4f}"
    return html.escape(str(v))


def table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def page(title: str, parts: list[str], extra_css: str = "") -> str:
    """A self-contained HTML document (no external URLs)."""
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{css()}{extra_css}</style></head><body>{''.join(parts)}</body></html>")
