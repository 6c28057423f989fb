"""Forecast metrics and plots. Arrays are [series, windows, horizon]: each backtest window of each series.

- MASE: mean absolute error over the in-sample mean absolute error of the seasonal naive forecast (the series'
  history before the first scored origin); below 1 beats seasonal naive's in-sample error. sMAPE and MAPE in percent
  (MAPE leaves out points where the actual is 0); RMSE in the series' units. Each is computed per series, and the
  aggregate is the mean over series.
- Intervals: the weighted quantile loss over the quantiles the intervals give (0.025, 0.1, 0.5, 0.9, 0.975 for the
  80% and 95% intervals), summed over the panel and divided by the sum of |actual| (AutoGluon's and GluonTS' WQL),
  and the share of points each interval covers (an 80% interval should cover about 80%).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from forgeml.evaluate.plots import pyplot, save_figure


def mase_scale(history: np.ndarray, season: int) -> float:
    """The in-sample mean absolute error of the seasonal naive forecast (of the naive one when the season does not
    fit or gives 0): MASE's denominator."""
    for m in (season, 1):
        if m >= 1 and len(history) > m:
            d = float(np.mean(np.abs(history[m:] - history[:-m])))
            if d > 1e-12:
                return d
    return 1.0


def quantile_levels(levels: list[int]) -> list[tuple[float, str, int]]:
    """(quantile, which bound, level) for each interval: 80 -> (0.1, lo, 80), (0.9, hi, 80)."""
    out = []
    for level in sorted(levels, reverse=True):
        out += [((100 - level) / 200, "lo", level), (1 - (100 - level) / 200, "hi", level)]
    return sorted(out)


def score(actual: np.ndarray, forecast: np.ndarray, scales: np.ndarray, bands: Optional[dict] = None,
          ids: Optional[list[str]] = None) -> dict:
    """Aggregate metrics, per-series rows and the scaled error per horizon step. ``bands``: level -> (lo, hi)."""
    err = forecast - actual
    absolute = np.abs(err)
    per_mase = absolute.mean(axis=(1, 2)) / scales
    denom = np.abs(actual) + np.abs(forecast)
    with np.errstate(divide="ignore", invalid="ignore"):
        smape_points = np.where(denom > 0, 2 * absolute / denom, 0.0)
        ape = np.where(actual != 0, absolute / np.abs(actual), np.nan)
    per_smape = 100 * smape_points.mean(axis=(1, 2))
    per_mape = 100 * np.array([np.nanmean(a) if np.isfinite(a).any() else np.nan for a in ape])
    per_rmse = np.sqrt((err ** 2).mean(axis=(1, 2)))
    out = {"n": int(actual.size), "unit": "points", "n_series": int(len(actual)),
           "mase": float(per_mase.mean()), "smape": float(per_smape.mean()),
           "mape": float(np.nanmean(per_mape)) if np.isfinite(per_mape).any() else None,
           "rmse": float(per_rmse.mean()),
           "by_step": [float(v) for v in (absolute / scales[:, None, None]).mean(axis=(0, 1))]}
    if bands:
        total = float(np.abs(actual).sum()) or 1.0
        losses = [2 * _pinball(actual, forecast, 0.5).sum() / total]
        for level, (lo, hi) in sorted(bands.items()):
            q = (100 - level) / 200
            losses += [2 * _pinball(actual, lo, q).sum() / total, 2 * _pinball(actual, hi, 1 - q).sum() / total]
            out[f"coverage_{level}"] = float(((actual >= lo) & (actual <= hi)).mean())
        out["wql"] = float(np.mean(losses))
    if ids is not None:
        out["per_series"] = {"columns": ["series", "mase", "smape", "mape", "rmse"],
                             "rows": [[sid, _r(m), _r(s), _r(p), _r(r)]
                                      for sid, m, s, p, r in zip(ids, per_mase, per_smape, per_mape, per_rmse)]}
    return out


def _pinball(actual: np.ndarray, pred: np.ndarray, q: float) -> np.ndarray:
    diff = actual - pred
    return np.maximum(q * diff, (q - 1) * diff)


def _r(v) -> Optional[float]:
    return None if v is None or not np.isfinite(v) else float(f"{v:.5g}")


# ------------------------------------------------------------------------------------------------ plots
def forecast_plot(series: list[dict], freq_label: str, path: Path) -> Path:
    """History plus the test windows' forecasts with their intervals for a few series. Each entry: id, times,
    values (the history shown), and windows: list of (times, actual, forecast, {level: (lo, hi)})."""
    plt = pyplot()
    fig, axes = plt.subplots(len(series), 1, figsize=(8, 2.6 * len(series)), squeeze=False)
    for ax, s in zip(axes[:, 0], series):
        ax.plot(s["times"], s["values"], color="black", lw=1, label="actual")
        for j, (times, actual, forecast, bands) in enumerate(s["windows"]):
            for level, (lo, hi) in sorted(bands.items(), reverse=True):
                ax.fill_between(times, lo, hi, color="tab:blue", alpha=0.15 if level >= 95 else 0.3, lw=0,
                                label=f"{level}% interval" if j == 0 else None)
            ax.plot(times, actual, color="black", lw=1)
            ax.plot(times, forecast, color="tab:blue", lw=1.5, label="forecast" if j == 0 else None)
            ax.axvline(times[0], color="grey", ls=":", lw=0.8)
        ax.set_title(f"{s['id']}: test windows (dotted lines: forecast origins)", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper left")
    axes[-1, 0].set_xlabel(freq_label)
    fig.tight_layout()
    return save_figure(fig, path)


def by_step_plot(curves: dict[str, list[float]], path: Path) -> Path:
    """The test error at each horizon step (mean absolute error over the MASE scale), one line per model."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for name, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, "o-", ms=3, label=name)
    ax.set_xlabel("horizon step")
    ax.set_ylabel("scaled absolute error (test)")
    ax.set_title("error by horizon step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
