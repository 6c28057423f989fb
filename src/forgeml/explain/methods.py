"""Which explanation a run gets, which methods apply to it, and which run by default.

The explanation's kind comes from the feature types (``FeatureType.explains_as``), never from their names:

| kind      | run                                                  | methods               | default (no --method) |
| --------- | ---------------------------------------------------- | --------------------- | --------------------- |
| `regions` | an input explained as a heat-map (images: CNN)       | gradcam, ig           | gradcam + ig          |
| `regions` | pixels_linear (no convolutions; gradients as a layer)| ig                    | ig                    |
| `tokens`  | a model that reads only token types (text, minilm)   | ig, lime              | ig                    |
| `tokens`  | tfidf_linear (no gradients)                          | lime                  | lime                  |
| `columns` | anything else (a table), torch MLP                   | permutation, ig, lime | permutation + ig      |
| `columns` | a table, LightGBM                                    | permutation, lime     | permutation + lime    |

Permutation importance is global (needs labelled rows); the others explain single instances. Anomaly runs (the
``scores`` tag) have their own methods, per row: forgeml.explain.anomaly.
"""
from __future__ import annotations

from typing import Optional

from forgeml import features
from forgeml.errors import ConfigError
from forgeml.models import learner_facts

METHODS = ("gradcam", "ig", "lime", "permutation")
LOCAL = ("gradcam", "ig", "lime")
NAMES = {"gradcam": "Grad-CAM", "ig": "Integrated Gradients", "lime": "LIME", "permutation": "permutation importance"}

REGIONS, TOKENS, COLUMNS = "regions", "tokens", "columns"  # the values of FeatureType.explains_as
KIND_METHODS = {REGIONS: ("gradcam", "ig"), TOKENS: ("ig", "lime")}  # columns: by the learner (below)
KIND_DEFAULTS = {REGIONS: ["gradcam", "ig"], TOKENS: ["ig"]}
KIND_WORDS = {REGIONS: "as heat-maps", TOKENS: "per token", COLUMNS: "per column"}


def kind_of(manifest: dict) -> str:
    """'regions' (a present type explains as a heat-map), 'tokens' (the model accepts only types explained per
    token) or 'columns' (a table: one attribution per raw column)."""
    if any(t.explains_as == REGIONS for t, _ in features.present(manifest["preprocessing"])):
        return REGIONS
    accepted = {features.get(n).explains_as for n in learner_facts(manifest["model"])[1] if n in features.FEATURES}
    return TOKENS if accepted == {TOKENS} else COLUMNS


def explained(model, kind: str):
    """(type, its state) of the run's input explained as ``kind`` (regions or tokens)."""
    return next((t, s) for t, s in features.present(model.preprocessor.state) if t.explains_as == kind)


def differentiable(tags) -> bool:
    """A learner whose outputs have gradients: a torch network, or one that offers itself as one (``gradients``:
    pixels_linear)."""
    return "torch" in tags or "gradients" in tags


def applicable(manifest: dict) -> tuple[str, ...]:
    kind = kind_of(manifest)
    tags = learner_facts(manifest["model"])[0]
    if kind == TOKENS and not differentiable(tags):  # tfidf_linear: no gradients
        return ("lime",)
    if kind == REGIONS:  # Grad-CAM needs a convolutional stage (the CNN); IG needs gradients
        return tuple(m for m in KIND_METHODS[REGIONS] if (m != "gradcam" or "conv" in tags) and differentiable(tags))
    if kind in KIND_METHODS:
        return KIND_METHODS[kind]
    if not differentiable(tags):  # no gradients: no Integrated Gradients
        return ("permutation", "lime")
    return ("permutation", "ig", "lime")


def defaults(manifest: dict, has_input: bool) -> list[str]:
    kind = kind_of(manifest)
    tags = learner_facts(manifest["model"])[0]
    if kind == TOKENS and not differentiable(tags):
        return ["lime"]
    if kind in KIND_DEFAULTS:
        return [m for m in KIND_DEFAULTS[kind] if m in applicable(manifest)]
    local = "ig" if differentiable(tags) else "lime"
    return [local] if has_input else ["permutation", local]


def _or(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _and(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _what(manifest: dict) -> str:
    kind = kind_of(manifest)
    types = [t.name for t, _ in features.present(manifest["preprocessing"])]
    return f"a model of {_and(types)} columns ({manifest['model']['name']}), explained {KIND_WORDS[kind]}"


def _regions() -> str:
    names = [t.name for t in features.all_types() if t.explains_as == REGIONS]
    return _or(names) if names else "heat-map"


WHY_NOT = {
    "gradcam": lambda: f"Grad-CAM looks at a CNN's last convolutional stage, so it explains convolutional {_regions()} models only",
    "ig": lambda: "Integrated Gradients needs a differentiable model; LightGBM's trees and TF-IDF counts have no gradients",
    "lime": lambda: f"LIME here switches table columns or words off, not {_regions()} regions",
    "permutation": lambda: "permutation importance shuffles table columns one at a time",
}


def choose(manifest: dict, method: Optional[str], has_input: bool, allowed: tuple = METHODS) -> list[str]:
    """The methods to run; a clear error for an unknown method or one that does not fit the run."""
    if method is None:
        return defaults(manifest, has_input)
    method = method.strip().lower()
    if method not in METHODS:
        raise ConfigError(f"unknown explain method {method!r}; choose one of {', '.join(m for m in METHODS if m in allowed)}")
    ok = [m for m in applicable(manifest) if m in allowed]
    if method not in ok:
        raise ConfigError(f"method {method!r} does not apply to this run: {WHY_NOT[method]()}, and this run is "
                          f"{_what(manifest)}. Use {_or(ok)}")
    return [method]


def local_method(manifest: dict, method: Optional[str]) -> str:
    """The one per-instance method for a request (the server's explain endpoint): the given one, checked, or the
    run's default (gradcam for regions, ig for tokens and torch tables, lime for LightGBM)."""
    if method is None:
        return next(m for m in defaults(manifest, has_input=True) if m in LOCAL)
    if isinstance(method, str) and method.strip().lower() == "permutation":
        raise ConfigError("permutation importance is global (it shuffles columns across many labelled rows): run "
                          "`forgeml explain RUN`; explain instances here with "
                          f"{_or(m for m in applicable(manifest) if m in LOCAL)}")
    (chosen,) = choose(manifest, method, has_input=True, allowed=LOCAL)
    return chosen
