"""Per-instance explanations (Grad-CAM, Integrated Gradients, LIME) as numbers a person can read: per table column,
per token, per pixel. Shared by `forgeml explain` and the server's explain endpoint."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from forgeml.explain import attributions as at
from forgeml.explain import tables
from forgeml.explain.methods import COLUMNS, REGIONS, TOKENS, explained, kind_of


@dataclass
class Local:
    method: str
    kind: str  # regions | tokens | columns (forgeml.explain.methods.kind_of)
    outputs: np.ndarray  # explained units per instance: class probabilities [N, K] or [N, 1] target units (no mean)
    targets: np.ndarray  # explained output index per instance
    values: np.ndarray  # attributions: [N, features] | [N, tokens] | [N, H, W]
    deltas: Optional[np.ndarray] = None  # IG (Captum): sum(attributions) - (output(x) - output(baseline))
    features: Optional[list[str]] = None  # tables: the raw feature per column of `values`
    tokens: Optional[list[list[Optional[str]]]] = None  # tokens: the words/word pieces per instance (None: not shown)
    raw_values: Optional[list[dict]] = None  # tables: the instance's own column values


def _tokens(model, frame: pd.DataFrame, arrays: dict) -> list[list[Optional[str]]]:
    """The token shown for each position of the model's token input (FeatureType.token_strings)."""
    ftype, state = explained(model, TOKENS)
    return ftype.token_strings(frame, state, arrays)


def explain_local(model, arrays: dict, frame: pd.DataFrame, method: str, target: Optional[int] = None,
                  n_steps: int = 50, n_samples: Optional[int] = None, seed: int = 0, advance=None) -> Local:
    """`advance` is called once per instance LIME explains (a progress bar's step)."""
    kind = kind_of(model.manifest)
    outputs = at.predict(model, arrays)
    targets = at.targets_for(model, outputs, target)
    deltas = features = tokens = raw_values = None
    if kind == REGIONS:
        image = arrays[at.region_key(model)]
        if method == "gradcam":
            values = at.gradcam(model, image, targets)
        else:
            values, deltas = at.ig_image(model, image, targets, n_steps=min(n_steps, 32))
    elif kind == TOKENS:
        if method == "ig":
            values, deltas = at.ig_tokens(model, arrays, targets, n_steps=n_steps)
        else:
            values = at.lime_tokens(model, arrays, targets, n_samples=n_samples or 300, seed=seed, advance=advance)
        tokens = _tokens(model, frame, arrays)
    else:
        features, _ = tables.table_groups(model)
        if method == "ig":
            values, deltas = tables.ig_table(model, arrays, targets, n_steps=n_steps)
        else:
            values = tables.lime_table(model, arrays, targets, n_samples=n_samples or 400, seed=seed, advance=advance)
        cols = [c for c in model.features if c in frame.columns]
        raw_values = frame[cols].to_dict(orient="records") if len(frame) == len(values) else None
    return Local(method, kind, outputs, targets, values, deltas, features, tokens, raw_values)


def json_value(v):
    """A table value as JSON: numpy scalars as Python, NaN and inf as null, anything else as text."""
    if isinstance(v, (np.generic,)):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def prediction(model, local: Local, i: int) -> dict:
    """What the model said for instance i, and which output is explained."""
    out = local.outputs[i]
    if "labels" in model.task.tags:
        labels = model.labels
        return {"prediction": json_value(labels[int(out.argmax())]), "explained": json_value(labels[int(local.targets[i])]),
                "probability": round(float(out[local.targets[i]]), 6),
                "probabilities": {str(lab): round(float(p), 6) for lab, p in zip(labels, out)}}
    return {"prediction": round(float(out[0]) + float(model.task.state["mean"]), 6)}


def record(model, local: Local, i: int, heatmap: bool = True, digits: int = 6) -> dict:
    """One instance's explanation as JSON-able data."""
    rec = {"method": local.method, **prediction(model, local, i)}
    if local.deltas is not None:
        rec["delta"] = round(float(local.deltas[i]), digits) + 0.0  # + 0.0: no "-0.0"
    v = local.values[i]
    if local.kind == COLUMNS:
        rec["attributions"] = {f: round(float(a), digits) + 0.0 for f, a in zip(local.features, v)}
        order = np.argsort(-np.abs(v))
        rec["top"] = [local.features[j] for j in order[:5]]
        if local.raw_values is not None:
            rec["values"] = {k: json_value(x) for k, x in local.raw_values[i].items()}
    elif local.kind == TOKENS:
        toks = local.tokens[i]
        keep = [j for j, t in enumerate(toks) if j < len(v) and t is not None]
        rec["tokens"] = [toks[j] for j in keep]
        rec["attributions"] = [round(float(v[j]), digits) + 0.0 for j in keep]
        order = sorted(range(len(keep)), key=lambda j: -abs(rec["attributions"][j]))
        rec["top"] = [rec["tokens"][j] for j in order[:5]]
    else:
        peak = np.unravel_index(int(np.argmax(np.abs(v))), v.shape)
        rec["peak"] = [int(peak[0]), int(peak[1])]
        rec["size"] = list(v.shape)
        if heatmap:
            rec["heatmap"] = (np.round(v, digits) + 0.0).tolist()
    return rec
