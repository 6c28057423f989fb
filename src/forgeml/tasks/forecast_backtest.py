"""The rolling-origin backtest's pieces, for forecasting: where each series' validation and test windows start, the
contexts (history up to each origin) a forecaster is given, the panel cut at the fitting origin, and the intervals,
calibrated on at least CALIBRATION_POINTS validation points where the series allow (windows before validation join
in). Two kinds:

- split conformal, for every model: per level, a quantile of the validation errors over the MASE scale and
  sqrt(step); the interval is the forecast plus or minus it, times the scale and sqrt(step);
- conformalized quantile regression (CQR, Romano et al. 2019), for models that give their own quantiles (the
  networks' quantile outputs): per level, a quantile of how far each point fell outside the model's own interval
  (negative inside), over the MASE scale; the interval is the model's, widened (or narrowed) by it times the scale.

For a model with its own quantiles, ``choose_intervals`` picks between the two on the calibration windows themselves,
by cross-fitting: each kind is calibrated on one half of the windows and scored (weighted quantile loss) on the
other, then the other way round.
"""
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


def interval_ends(levels: list[int]) -> list[float]:
    """The quantiles that bound the intervals of ``levels`` (percent), each level's lower then upper end."""
    return [q for lv in levels for q in ((100 - lv) / 200, (100 + lv) / 200)]


def own_bands(quantiles: np.ndarray | None, levels: list[int]) -> dict[int, tuple] | None:
    """level -> (lo, hi) from a model's own quantiles ([..., 2 x levels], in interval_ends' order); None for none."""
    if quantiles is None:
        return None
    return {int(lv): (quantiles[..., 2 * i], quantiles[..., 2 * i + 1]) for i, lv in enumerate(levels)}


def outside_scores(actual: np.ndarray, own: dict[int, tuple], scales: np.ndarray) -> dict[int, np.ndarray]:
    """CQR's scores per level, flat, for [series, windows, horizon] arrays: how far each point fell outside the
    model's own interval (negative: inside), over the series' MASE scale."""
    per = scales[:, None, None]
    return {lv: (np.maximum(lo - actual, actual - hi) / per).ravel() for lv, (lo, hi) in own.items()}


def interval_quantiles(errors: np.ndarray | dict, levels: list[int]) -> dict[str, float]:
    """Per level: the quantile of the scaled validation errors (one array for every level, or one per level), with
    split conformal's finite-sample correction (the ceil((n + 1) level) / n quantile of n errors)."""
    out = {}
    for lv in levels:
        e = errors[int(lv)] if isinstance(errors, dict) else errors
        n = len(e)
        out[str(lv)] = float(np.quantile(e, min(1.0, np.ceil((n + 1) * lv / 100) / n), method="higher"))
    return out


def bands(pred: np.ndarray, scales: np.ndarray, quantiles: dict, horizon: int,
          own: dict[int, tuple] | None = None) -> dict[int, tuple]:
    """level -> (lo, hi), the same shape as ``pred`` ([series, windows, horizon] or [series, horizon]). ``own``: the
    model's own interval per level (own_bands), which ``quantiles`` then corrects (CQR); else ``pred`` plus or
    minus ``quantiles`` x scale x sqrt(step) (split conformal)."""
    per_series = scales.reshape(-1, *([1] * (pred.ndim - 1)))
    steps = np.sqrt(np.arange(1, horizon + 1)).reshape((1,) * (pred.ndim - 2) + (horizon,))
    out = {}
    for lv, q in quantiles.items():
        if own is not None:
            lo, hi = own[int(lv)]
            out[int(lv)] = (lo - q * per_series, hi + q * per_series)
        else:
            half = q * per_series * steps
            out[int(lv)] = (pred - half, pred + half)
    return out


def as_rows(blocks: list[tuple]) -> tuple:
    """Calibration blocks (actual, forecast, own quantiles or None: [series, windows, h(, 2 x levels)]; the
    series' scales [series]) as rows, one per (series, window): actual, forecast [R, h], own [R, h, 2L] or None,
    scales [R]."""
    actual = np.concatenate([a.reshape(-1, a.shape[-1]) for a, _, _, _ in blocks])
    pred = np.concatenate([p.reshape(-1, p.shape[-1]) for _, p, _, _ in blocks])
    own = None if any(o is None for _, _, o, _ in blocks) else \
        np.concatenate([o.reshape(-1, *o.shape[-2:]) for _, _, o, _ in blocks])
    scales = np.concatenate([np.repeat(sc, a.shape[1]) for a, _, _, sc in blocks])
    return actual, pred, own, scales


def calibrate(kind: str, rows: tuple, levels: list[int]) -> dict[str, float]:
    """The run's per-level numbers for intervals of ``kind`` ("quantile": CQR; "conformal") from calibration rows."""
    actual, pred, own, scales = rows
    errors = outside_scores(actual[:, None], own_bands(own[:, None], levels), scales) if kind == "quantile" else \
        scaled_errors(actual[:, None], pred[:, None], scales)
    return interval_quantiles(errors, levels)


def rows_bands(kind: str, rows: tuple, quantiles: dict, levels: list[int]) -> dict[int, tuple]:
    actual, pred, own, scales = rows
    return bands(pred, scales, quantiles, pred.shape[-1], own_bands(own, levels) if kind == "quantile" else None)


def choose_intervals(rows: tuple, levels: list[int]) -> tuple[str, dict[str, float]]:
    """"quantile" or "conformal", whichever gives the lower weighted quantile loss when calibrated on every other
    calibration row and scored on the rest (both ways round), and each kind's loss. Fewer than 2 rows: conformal."""
    from forgeml.evaluate.forecast import score

    n = len(rows[0])
    if n < 2:
        return "conformal", {}
    halves = [np.arange(n) % 2 == 0, np.arange(n) % 2 == 1]
    part = lambda mask: tuple(None if r is None else r[mask] for r in rows)  # noqa: E731
    loss = {}
    for kind in ("quantile", "conformal"):
        total = 0.0
        for fit, held in (halves, halves[::-1]):
            b = rows_bands(kind, part(held), calibrate(kind, part(fit), levels), levels)
            actual, pred = rows[0][held], rows[1][held]
            total += score(actual[:, None], pred[:, None], rows[3][held],
                           {lv: (lo[:, None], hi[:, None]) for lv, (lo, hi) in b.items()})["wql"]
        loss[kind] = total / 2
    return min(loss, key=loss.get), loss


def calibration_rows(panel: "Panel", first_val: list[int], horizon: int, validation: tuple, forecast_from) -> tuple:
    """The calibration rows (as_rows): the validation block (actual, forecast, own quantiles or None, scales) and, on
    few series, windows before validation until there are CALIBRATION_POINTS points; ``forecast_from(ends)`` fits
    the kept model on each series up to its end and gives (forecast, own quantiles or None) [series, 1, h(, 2L)]."""
    from forgeml.evaluate.forecast import mase_scale

    blocks = [validation]
    for ends in earlier_origins(panel, first_val, horizon, CALIBRATION_POINTS - validation[0].size):
        pred, own = forecast_from(ends)
        truth = np.stack([s.values[e:e + horizon] for s, e in zip(panel.series, ends)])[:, None]
        blocks.append((truth, pred, own, np.array([mase_scale(s.values[:e], panel.season)
                                                   for s, e in zip(panel.series, ends)])))
    return as_rows(blocks)


def interval_kind(rows: tuple, setting: str, levels: list[int]) -> tuple[str, dict]:
    """The run's kind of interval for ``task.intervals`` ``setting`` (auto, quantile, conformal) and, for auto, each
    kind's cross-fitted loss (choose_intervals): CQR only where the calibration rows hold the model's own quantiles."""
    if rows[2] is None or setting == "conformal":
        return "conformal", {}
    return choose_intervals(rows, levels) if setting == "auto" else ("quantile", {})
