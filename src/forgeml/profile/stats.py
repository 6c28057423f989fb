"""Helpers shared by the profile's modules: a numeric column's statistics, warnings, percentages, display, JSON."""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import pandas as pd

from forgeml.profile.rules import HIST_BINS, MAX_FLIERS, OUTLIER_IQR

Step = Callable[[str], None]  # told what runs now (a progress line)



def warning(kind: str, column: Optional[str], message: str) -> dict:
    return {"kind": kind, "column": column, "message": message}


def pct(part, whole) -> float:
    return float(100.0 * part / whole) if whole else 0.0


def display(value, width: int = 40) -> str:
    if isinstance(value, (bytes, np.ndarray)):
        shape = "x".join(map(str, value.shape)) if isinstance(value, np.ndarray) else f"{len(value)} bytes"
        return f"<array {shape}>"
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return "(missing)"
    text = str(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= width else text[: width - 1] + "…"


def jsonable(obj):
    """numpy scalars and NaN/inf made plain JSON values (None for NaN/inf)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def numeric_stats(col: pd.Series) -> dict:
    """Summary, IQR outliers, histogram and box-plot statistics of a numeric column (missing and infinite values left out)."""
    x = col.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(x)
    infinite = int((np.isinf(x)).sum())
    v = x[finite]
    if v.size == 0:
        return {"count": 0, "infinite": infinite, "outliers": None, "outliers_pct": None, "hist": None, "box": None}
    q1, median, q3 = (float(q) for q in np.quantile(v, [0.25, 0.5, 0.75]))
    iqr = q3 - q1
    lo, hi = q1 - OUTLIER_IQR * iqr, q3 + OUTLIER_IQR * iqr
    out = (v < lo) | (v > hi)
    n_out = int(out.sum()) if iqr > 0 else None  # IQR 0 (one value dominates): the rule would flag every other value
    vmin, vmax = float(v.min()), float(v.max())
    counts, edges = np.histogram(v, bins=HIST_BINS if vmax > vmin else 1)
    inside = v[~out] if iqr > 0 else v
    fliers = np.sort(v[out]) if n_out else np.array([])
    if fliers.size > MAX_FLIERS:  # keep the extremes and an even spread between them
        fliers = fliers[np.unique(np.linspace(0, fliers.size - 1, MAX_FLIERS).round().astype(int))]
    return {
        "count": int(v.size), "infinite": infinite, "mean": float(v.mean()), "std": float(v.std()),
        "min": vmin, "q1": q1, "median": median, "q3": q3, "max": vmax, "iqr": iqr,
        "lower_fence": lo, "upper_fence": hi, "outliers": n_out,
        "outliers_pct": None if n_out is None else pct(n_out, v.size),
        "hist": {"counts": counts.tolist(), "edges": edges.tolist()},
        "box": {"q1": q1, "med": median, "q3": q3, "whislo": float(inside.min()), "whishi": float(inside.max()),
                "fliers": fliers.tolist()},
    }
