"""The rolling-origin backtest's pieces, for forecasting: where each series' validation and test windows start, the
contexts (history up to each origin) a forecaster is given, the panel cut at the fitting origin, and the split
conformal intervals (quantiles of the validation errors over the MASE scale and sqrt(step)), calibrated on at least
CALIBRATION_POINTS errors where the series allow (windows before validation join in)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from forgeml.features.series import Panel

CALIBRATION_POINTS = 96


def backtest_origins(length: int, horizon: int, windows: int, part: str) -> list[int]:
    """The origins (history lengths) of a series' validation or test windows."""
    first = length - (2 if part == "val" else 1) * windows * horizon
    return [first + j * horizon for j in range(windows)]


def contexts_at(panel: "Panel", origins: list[list[int]], horizon: int) -> list:
    """One Context per (series, origin), series-major."""
    from forgeml.models.forecasters import Context

    out = []
    for s, starts in zip(panel.series, origins):
        for t in starts:
            cov = s.covariates
            out.append(Context(s.id, s.values[:t], s.times[:t], s.times[t:t + horizon],
                               cov.iloc[:t] if cov is not None else None,
                               cov[panel.known].iloc[t:t + horizon] if cov is not None and panel.known else None, s.static))
    return out


def cut(panel: "Panel", ends: list[int]) -> "Panel":
    """The panel with each series ended at its ``ends`` entry (what a model may fit on)."""
    from dataclasses import replace

    return replace(panel, series=[replace(s, values=s.values[:e], times=s.times[:e],
                                          covariates=s.covariates.iloc[:e] if s.covariates is not None else None)
                                  for s, e in zip(panel.series, ends)])


def earlier_origins(panel: "Panel", first_val: list[int], horizon: int, missing: int, most: int = 6) -> list[list[int]]:
    """Origins of windows before validation, one horizon apart going back (for every series at once), until they add
    ``missing`` points or a series would keep fewer than two horizons (and its season) to fit on."""
    out, floor = [], max(2 * horizon, panel.season + 2)
    j = 1
    while missing > 0 and j <= most:
        ends = [v - j * horizon for v in first_val]
        if min(ends) < floor:
            break
        out.append(ends)
        missing -= len(ends) * horizon
        j += 1
    return out


def scaled_errors(actual: np.ndarray, pred: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """|error| / (MASE scale x sqrt(step)), flat, for [series, windows, horizon] arrays."""
    steps = np.sqrt(np.arange(1, actual.shape[-1] + 1))
    return (np.abs(actual - pred) / scales[:, None, None] / steps).ravel()


def interval_quantiles(errors: np.ndarray, levels: list[int]) -> dict[str, float]:
    """Per level: the quantile of the scaled validation errors, with split conformal's finite-sample correction
    (the ceil((n + 1) level) / n quantile of n errors)."""
    n = len(errors)
    return {str(lv): float(np.quantile(errors, min(1.0, np.ceil((n + 1) * lv / 100) / n), method="higher"))
            for lv in levels}


def bands(pred: np.ndarray, scales: np.ndarray, quantiles: dict, horizon: int) -> dict[int, tuple]:
    """level -> (lo, hi), the same shape as ``pred`` ([series, windows, horizon] or [series, horizon])."""
    steps = np.sqrt(np.arange(1, horizon + 1))
    width_shape = (-1,) + (1,) * (pred.ndim - 2) + (horizon,)
    out = {}
    for lv, q in quantiles.items():
        half = q * scales.reshape(-1, *([1] * (pred.ndim - 1))) * steps.reshape(width_shape[1:])
        out[int(lv)] = (pred - half, pred + half)
    return out
