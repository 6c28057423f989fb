"""The covariates global forecasters read beside a series' window, as arrays: the known covariates at each of the
``horizon`` points to forecast [n, H, K], the past-only covariates at the origin's last point [n, P], and the static
columns' level codes [n, S] (the index of the series' value, as text, in the column's sorted levels; NaN for a level
the fit never saw). The same arrays for training windows (``window_inputs``) and for the Contexts predict makes
(``context_inputs``), which are also what the exported ONNX graphs take as inputs (``input_specs``). Used by the
global LightGBM (forgeml.models.forecast_lgbm) and the window networks (forgeml.models.forecast_nets).
"""
from __future__ import annotations

import numpy as np


def covariate_meta(panel) -> dict:
    """What a model fitted on ``panel`` reads: {"known": [...], "past": [...], "static": {column: sorted levels}}."""
    return {"known": list(panel.known), "past": list(panel.past),
            "static": {c: sorted({str(s.static.get(c)) for s in panel.series}) for c in panel.static}}


def matrix(frame, columns: list[str]) -> np.ndarray:
    if frame is None or not columns or len(frame) == 0:
        return np.full((1, len(columns)), np.nan)
    return frame[columns].to_numpy(dtype=np.float64)


def gather(arrays: list[np.ndarray], series: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """arrays[series[j]][positions[j]] for every j, positions clipped to each array (a covariate past its end keeps
    its last value)."""
    out = np.empty((len(series),) + arrays[0].shape[1:], dtype=arrays[0].dtype)
    for i in np.unique(series):
        rows = series == i
        out[rows] = arrays[i][np.clip(positions[rows], 0, len(arrays[i]) - 1)]
    return out


def code(levels: list[str], value) -> float:
    try:
        return float(levels.index(str(value)))
    except ValueError:
        return np.nan


def static_codes(meta: dict, statics: list[dict]) -> np.ndarray:
    """[n, S]: each static column's level code, for each of the ``statics`` (a series' static values)."""
    return np.array([[code(levels, st.get(col)) for col, levels in meta["static"].items()] for st in statics],
                    dtype=np.float64).reshape(len(statics), len(meta["static"]))


def window_inputs(meta: dict, panel, w, horizon: int) -> dict[str, np.ndarray]:
    """The covariates of training windows ``w`` (forgeml.models.forecast_windows.Windows over ``panel``): the known
    ones at origin + k - 1 for k = 1..H, the past ones at origin - 1, the static codes. Only the kinds ``meta`` has."""
    out = {}
    known, past = meta["known"], meta["past"]
    if known or past:
        covs = [matrix(s.covariates, known + past) for s in panel.series]
        if known:
            out["known"] = np.stack([gather(covs, w.series, w.origin + k - 1)[:, :len(known)]
                                     for k in range(1, horizon + 1)], axis=1)
        if past:
            out["past"] = gather(covs, w.series, w.origin - 1)[:, len(known):]
    if meta["static"]:
        out["static"] = static_codes(meta, [panel.series[i].static for i in w.series])
    return {k: v.astype(np.float32) for k, v in out.items()}


def context_inputs(meta: dict, contexts: list, horizon: int) -> dict[str, np.ndarray]:
    """The same for the Contexts predict makes: the known covariates at each future time, the past ones at the
    history's last time, the static codes."""
    steps = np.arange(horizon)
    at = lambda rows, i: rows[np.clip(i, 0, len(rows) - 1)]  # noqa: E731  (as gather clips)
    out = {}
    if meta["known"]:
        out["known"] = np.stack([at(matrix(c.future_known, meta["known"]), steps) for c in contexts])
    if meta["past"]:
        out["past"] = np.stack([at(matrix(c.covariates, meta["past"]), len(c.history) - 1) for c in contexts])
    if meta["static"]:
        out["static"] = static_codes(meta, [c.static for c in contexts])
    return {k: v.astype(np.float32) for k, v in out.items()}


def input_specs(meta: dict, horizon: int) -> list[dict]:
    """The exported graph's covariate inputs, as the manifest describes them."""
    h, out = horizon, []
    if meta["known"]:
        out.append({"name": "known", "dtype": "float32", "shape": ["series", h, len(meta["known"])],
                    "columns": list(meta["known"]), "how": f"the known covariates' values at each of the next {h} times"})
    if meta["past"]:
        out.append({"name": "past", "dtype": "float32", "shape": ["series", len(meta["past"])],
                    "columns": list(meta["past"]), "how": "the past covariates' values at the history's last time"})
    if meta["static"]:
        listed = "; ".join(f"{c}: {', '.join(v[:8])}{' ...' if len(v) > 8 else ''}" for c, v in meta["static"].items())
        out.append({"name": "static", "dtype": "float32", "shape": ["series", len(meta["static"])],
                    "columns": list(meta["static"]), "levels": meta["static"],
                    "how": "each static column's level code: the index of the series' value (as text) in "
                           f"that column's sorted levels (levels; {listed}), NaN for a level not listed"})
    return out
