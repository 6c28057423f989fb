"""Which explanation methods apply to a run, and which run by default.

| run                          | methods                      | default (no --method)     |
| ---------------------------- | ---------------------------- | ------------------------- |
| images (CNN)                 | gradcam, ig                  | gradcam + ig              |
| text (text, minilm models)   | ig, lime                     | ig                        |
| table, torch MLP             | permutation, ig, lime        | permutation + ig          |
| table, LightGBM              | permutation, lime            | permutation + lime        |

Permutation importance is global (needs labelled rows); the others explain single instances. Anomaly runs (the
``scores`` tag) have their own methods, per row: forgeml.explain.anomaly.
"""
from __future__ import annotations

from typing import Optional

from forgeml.errors import ConfigError
from forgeml.models import get_model

METHODS = ("gradcam", "ig", "lime", "permutation")
LOCAL = ("gradcam", "ig", "lime")
NAMES = {"gradcam": "Grad-CAM", "ig": "Integrated Gradients", "lime": "LIME", "permutation": "permutation importance"}


def kind_of(manifest: dict) -> str:
    """'image', 'text' (a model that reads only text) or 'table' (numeric/categorical columns, maybe text too)."""
    pre = manifest["preprocessing"]
    if "image" in pre:
        return "image"
    if get_model(manifest["model"]["name"]).accepts == {"text"}:
        return "text"
    return "table"


def applicable(manifest: dict) -> tuple[str, ...]:
    kind = kind_of(manifest)
    if kind == "image":
        return ("gradcam", "ig")
    if kind == "text":
        return ("ig", "lime")
    if "torch" not in get_model(manifest["model"]["name"]).tags:  # no gradients: no Integrated Gradients
        return ("permutation", "lime")
    return ("permutation", "ig", "lime")


def defaults(manifest: dict, has_input: bool) -> list[str]:
    kind = kind_of(manifest)
    if kind == "image":
        return ["gradcam", "ig"]
    if kind == "text":
        return ["ig"]
    local = "ig" if "torch" in get_model(manifest["model"]["name"]).tags else "lime"
    return [local] if has_input else ["permutation", local]


def _what(manifest: dict) -> str:
    kind = kind_of(manifest)
    model = manifest["model"]["name"]
    return {"image": f"an image model ({model})", "text": f"a text model ({model})"}.get(kind, f"a table model ({model})")


WHY_NOT = {
    "gradcam": "Grad-CAM looks at a CNN's last convolutional stage, so it explains image models only",
    "ig": "Integrated Gradients needs a differentiable (torch) model; LightGBM's trees have no gradients",
    "lime": "LIME here switches table columns or words off, not image regions",
    "permutation": "permutation importance shuffles table columns one at a time",
}


def _listing(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def choose(manifest: dict, method: Optional[str], has_input: bool, allowed: tuple = METHODS) -> list[str]:
    """The methods to run; a clear error for an unknown method or one that does not fit the run."""
    if method is None:
        return defaults(manifest, has_input)
    method = method.strip().lower()
    if method not in METHODS:
        raise ConfigError(f"unknown explain method {method!r}; choose one of {', '.join(m for m in METHODS if m in allowed)}")
    ok = [m for m in applicable(manifest) if m in allowed]
    if method not in ok:
        raise ConfigError(f"method {method!r} does not apply to this run: {WHY_NOT[method]}, and this run is "
                          f"{_what(manifest)}. Use {_listing(ok)}")
    return [method]


def local_method(manifest: dict, method: Optional[str]) -> str:
    """The one per-instance method for a request (the server's explain endpoint): the given one, checked, or the
    run's default (gradcam for images, ig for text and torch tables, lime for LightGBM)."""
    if method is None:
        return next(m for m in defaults(manifest, has_input=True) if m in LOCAL)
    if isinstance(method, str) and method.strip().lower() == "permutation":
        raise ConfigError("permutation importance is global (it shuffles columns across many labelled rows): run "
                          "`forgeml explain RUN`; explain instances here with "
                          f"{_listing(m for m in applicable(manifest) if m in LOCAL)}")
    (chosen,) = choose(manifest, method, has_input=True, allowed=LOCAL)
    return chosen
