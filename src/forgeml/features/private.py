"""The preprocessing under train.privacy: what it learns from the private training rows, which DP-SGD's epsilon does
not cover, and what it takes from elsewhere.

- Images: pixels are scaled by their known range to [-1, 1] (mean 0.5, std 0.5 per channel), not by the training
  rows' mean and std. The image size and colour mode still come from the files (structure, not statistics).
- Numerics with declared bounds (``train.privacy.bounds: {column: [low, high]}``): filled with the midpoint, clipped
  to the bounds and scaled to [-1, 1] by them: nothing is learned from the rows. Values outside are clipped and
  counted (a notice says how many).
- Everything else (other numerics' mean and std, categorical levels, date-part scaling, text vocabularies) is fitted
  on the private training rows as without privacy: the run says so, in its output, its manifest and its report.
"""
from __future__ import annotations

from typing import Any

import numpy as np

PIXEL_MEAN, PIXEL_STD = 0.5, 0.5  # pixels in [0, 1] -> [-1, 1]
STATISTICS = {  # what each feature type's state holds that was learned from the training rows
    "numeric": "means, standard deviations and fill values",
    "categorical": "the levels seen in training",
    "datetime": "the date parts' means and standard deviations",
    "text": "the vocabulary",
}


def bounded_numeric(state: dict, bounds: dict[str, tuple[float, float]]) -> dict:
    """The numeric state with every declared column filled with its midpoint, clipped to its bounds and scaled by
    them to [-1, 1] (the other columns keep what was fitted)."""
    columns = state["columns"]
    declared = [j for j, c in enumerate(columns) if c in bounds]
    if not declared:
        return state
    state = {**state, "fill": list(state["fill"]), "center": list(state["center"]), "scale": list(state["scale"])}
    big = float(np.finfo(np.float32).max)
    lo, hi = state.get("clip", [[-big] * len(columns), [big] * len(columns)])
    lo, hi = list(lo), list(hi)
    for j in declared:
        low, high = bounds[columns[j]]
        lo[j], hi[j] = float(low), float(high)
        state["fill"][j] = state["center"][j] = (low + high) / 2
        state["scale"][j] = (high - low) / 2
    state["clip"] = [lo, hi]
    state["bounded"] = [columns[j] for j in declared]
    return state


def record(pre_state: dict, privacy, train_rows) -> tuple[dict[str, Any], list[str]]:
    """What the preprocessing learned from the private rows and what it did not (the manifest's
    ``data.preparation.private_preprocessing``), with the notices to print."""
    from forgeml.features.numeric import numeric_frame

    out: dict[str, Any] = {"covered_by_epsilon": [], "fitted_on_private_rows": []}
    notices = []
    numeric = pre_state.get("numeric")
    if numeric:
        bounded = numeric.get("bounded", [])
        if bounded:
            values = numeric_frame(train_rows, bounded)
            lo = np.asarray([privacy.bounds[c][0] for c in bounded])
            hi = np.asarray([privacy.bounds[c][1] for c in bounded])
            clipped = {c: int(n) for c, n in zip(bounded, ((values < lo) | (values > hi)).sum(axis=0)) if n}
            out["covered_by_epsilon"].append({"type": "numeric", "columns": bounded,
                                              "how": "scaled by the declared bounds to [-1, 1]", "clipped": clipped})
            if clipped:
                notices.append("privacy: training values outside their declared bounds were clipped: " +
                               ", ".join(f"{c} {n}" for c, n in clipped.items()))
        rest = [c for c in numeric["columns"] if c not in bounded]
        if rest:
            out["fitted_on_private_rows"].append({"type": "numeric", "columns": rest, "what": STATISTICS["numeric"]})
    if pre_state.get("image"):
        out["covered_by_epsilon"].append({"type": "image", "columns": [pre_state["image"]["column"]],
                                          "how": "pixels scaled by their known range to [-1, 1]"})
    for ftype in ("categorical", "datetime", "text"):
        if pre_state.get(ftype):
            state = pre_state[ftype]
            columns = state.get("columns") or [state.get("column")]
            out["fitted_on_private_rows"].append({"type": ftype, "columns": columns, "what": STATISTICS[ftype]})
    if out["fitted_on_private_rows"]:
        parts = [f"{p['what']} of {', '.join(map(str, p['columns'][:6]))}{' ...' if len(p['columns']) > 6 else ''}"
                 for p in out["fitted_on_private_rows"]]
        notices.append("privacy: the preprocessing learned " + "; ".join(parts) + " from the private training rows; "
                       "epsilon does not cover them. Declare numeric ranges known without the data in "
                       "train.privacy.bounds to scale by them instead (docs/privacy.md)")
    return out, notices
