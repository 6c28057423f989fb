"""The web page at /: pick a served model, fill a form generated from its input schema, see the prediction.

One self-contained HTML document (inline CSS and vanilla JavaScript, no external URLs) that talks to the same JSON API
as any client: GET /v1/models for the models and their input schemas, POST /v1/models/{name}/versions/{version}/predict
for a prediction. When the server wants an API key the page shows a key field; the key is sent as X-API-Key and kept in
sessionStorage for the tab.

The document, its stylesheet and its script are files in `static/` beside this module (page.html, page.css, page.js);
`render` fills the template's `{{css}}`, `{{js}}` and `{{api_key_required}}` slots.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

STATIC = Path(__file__).parent / "static"
_SLOT = re.compile(r"\{\{(\w+)\}\}")


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    """The text of a file in serve/static (read once)."""
    return (STATIC / name).read_text(encoding="utf-8")


@lru_cache(maxsize=2)
def render(api_key_required: bool = False) -> str:
    """The page; `api_key_required` shows the API key field (the server answers 401 without the key)."""
    values = {"css": asset("page.css"), "js": asset("page.js"),
              "api_key_required": "true" if api_key_required else "false"}
    # one pass: the inlined CSS and JS are never scanned for slots themselves
    return _SLOT.sub(lambda m: values[m.group(1)], asset("page.html"))
