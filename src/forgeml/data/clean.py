"""Cleaning (data.clean): de-duplication, missing values, numeric scaling, outliers.

Everything here is fitted on the training split only. The numeric part becomes plain JSON in the run's manifest
(fill value, clip bounds, centre and scale per column, which columns get a missing indicator), and
``apply_numeric`` replays it with numpy; the ONNX export builds the same steps as graph nodes. Rows are only ever
dropped from the training split (or, for exact duplicates, before splitting): validation, test and new rows are
filled and clipped instead, so an evaluation never silently skips the hard rows.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # only annotations: the serving process encodes requests without pandas
    import pandas as pd


# --------------------------------------------------------------------------------------------- rows
def duplicate_rows(df: pd.DataFrame) -> np.ndarray:
    """Mask of exact repeats of an earlier row (all columns, target included). Image arrays compare by content."""
    keyed = df.copy()
    for c in keyed.columns:
        if keyed[c].dtype == object and keyed[c].map(lambda v: isinstance(v, np.ndarray)).any():
            keyed[c] = keyed[c].map(lambda v: (v.shape, v.tobytes()) if isinstance(v, np.ndarray) else v)
    return keyed.duplicated(keep="first").to_numpy()


def quantile_bounds(values: np.ndarray, quantiles: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-column quantiles of the finite values (columns with none: unbounded)."""
    finite = np.where(np.isfinite(values), values, np.nan)
    with np.errstate(all="ignore"), _quiet_nan_warnings():
        lo, hi = np.nanquantile(finite, list(quantiles), axis=0)
    return np.nan_to_num(lo, nan=-np.inf).astype(np.float32), np.nan_to_num(hi, nan=np.inf).astype(np.float32)


def training_rows_to_drop(df: pd.DataFrame, values: np.ndarray, categorical: list[str], clean, bounds) -> dict[str, np.ndarray]:
    """Masks of training rows removed by data.clean (missing: drop, outliers: drop), by reason. ``values``: the
    numeric columns as floats (forgeml.features.numeric.numeric_frame)."""
    drops: dict[str, np.ndarray] = {}
    if clean.missing.numeric == "drop" and values.shape[1]:
        drops["missing numeric value"] = ~np.isfinite(values).all(axis=1)
    if clean.missing.categorical == "drop" and categorical:
        drops["missing categorical value"] = df[categorical].isna().any(axis=1).to_numpy()
    if clean.outliers.method == "drop" and values.shape[1]:
        lo, hi = bounds
        with np.errstate(invalid="ignore"):
            drops["outlier"] = ((values < lo) | (values > hi)).any(axis=1)
    return drops


# --------------------------------------------------------------------------------------------- numeric columns
def fit_numeric(values: np.ndarray, columns: list[str], clean, bounds=None) -> dict[str, Any]:
    """The numeric preprocessing state: fill -> clip -> (x - center) / scale, then 0/1 missing indicators."""
    finite = np.where(np.isfinite(values), values, np.nan)
    missing = clean.missing
    with _quiet_nan_warnings():
        mean = np.nan_to_num(np.nanmean(finite, axis=0))
        if missing.numeric == "median":
            fill = np.nanmedian(finite, axis=0)
        elif missing.numeric == "most_frequent":
            fill = np.array([_mode(finite[:, j]) for j in range(finite.shape[1])])
        elif missing.numeric == "constant":
            fill = np.full(finite.shape[1], missing.fill_value)
        else:  # mean; drop (rows with gaps left training; later rows get the mean)
            fill = mean
    fill = np.nan_to_num(fill).astype(np.float32)
    state: dict[str, Any] = {"columns": columns, "fill": fill.tolist()}

    filled = np.where(np.isnan(finite), fill, finite)
    if clean.outliers.method != "none":
        lo, hi = bounds if bounds is not None else quantile_bounds(values, clean.outliers.quantiles)
        state["clip"] = [lo.tolist(), hi.tolist()]
        filled = np.clip(filled, lo, hi)

    center, scale = _center_scale(filled, clean.scale)
    state.update(scale_method=clean.scale, center=center.tolist(), scale=scale.tolist())
    if missing.indicator:
        state["indicator"] = [c for c, has in zip(columns, np.isnan(finite).any(axis=0)) if has]
    return state


def _center_scale(x: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    if method == "standard":
        center, scale = x.mean(axis=0), x.std(axis=0)
    elif method == "minmax":
        center, scale = x.min(axis=0, initial=np.inf), x.max(axis=0, initial=-np.inf) - x.min(axis=0, initial=np.inf)
    elif method == "robust":
        q25, center, q75 = np.quantile(x, [0.25, 0.5, 0.75], axis=0) if len(x) else np.zeros((3, x.shape[1]))
        scale = q75 - q25
    else:
        center, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
    center = np.nan_to_num(center, nan=0.0, posinf=0.0, neginf=0.0)
    scale = np.where(np.isfinite(scale) & (scale > 1e-12), scale, 1.0)
    return center.astype(np.float32), scale.astype(np.float32)


# Scaled values are kept within +-1e6 (a million spreads from the centre): a number near the float32 limit would
# otherwise overflow a network's activations and give NaN probabilities; beyond this bound every value answers alike.
SCALED_LIMIT = 1e6


def numeric_steps(state: dict) -> dict[str, np.ndarray]:
    """The state as float32 arrays (older manifests stored mean/std only: mean-filled standardization)."""
    center = np.asarray(state.get("center", state.get("mean")), dtype=np.float32)
    steps = {"fill": np.asarray(state.get("fill", center), dtype=np.float32), "center": center,
             "scale": np.asarray(state.get("scale", state.get("std")), dtype=np.float32)}
    if "clip" in state:
        steps["lo"], steps["hi"] = (np.asarray(b, dtype=np.float32) for b in state["clip"])
    steps["indicator"] = np.asarray([state["columns"].index(c) for c in state.get("indicator", [])], dtype=np.int64)
    return steps


def apply_numeric(values: np.ndarray, state: dict) -> np.ndarray:
    s = numeric_steps(state)
    missing = ~np.isfinite(values)
    x = np.where(missing, s["fill"], values)
    if "lo" in s:
        x = np.clip(x, s["lo"], s["hi"])
    with np.errstate(over="ignore"):  # a value near the float32 limit scales to inf, then to the limit below
        x = np.clip((x - s["center"]) / s["scale"], -SCALED_LIMIT, SCALED_LIMIT)
    if len(s["indicator"]):
        x = np.concatenate([x, missing[:, s["indicator"]].astype(np.float32)], axis=1)
    return x.astype(np.float32)


def numeric_width(state: dict) -> int:
    """Numeric inputs the model receives: the columns plus their missing indicators."""
    return len(state["columns"]) + len(state.get("indicator", []))


def _mode(col: np.ndarray) -> float:
    values, counts = np.unique(col[~np.isnan(col)], return_counts=True)
    return float(values[counts.argmax()]) if len(values) else 0.0


@contextlib.contextmanager
def _quiet_nan_warnings():
    """All-missing columns give 'Mean of empty slice': expected, handled by nan_to_num."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
