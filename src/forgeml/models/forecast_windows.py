"""The windows global forecasters learn from: for a series and an origin, the last ``lags`` values divided by their
mean level (so one model serves series of every size), and the points after the origin as targets in the same scale.

``training_windows`` cuts every series of a panel at many origins (strided when there would be more than
``max_windows``); ``context_windows`` makes the one window of each forecast to make.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forgeml.models.forecasters import Context, padded, window_scale


@dataclass
class Windows:
    x: np.ndarray  # [n, lags] scaled history
    scale: np.ndarray  # [n] the level each window was divided by
    origin: np.ndarray  # [n] origin index in its series (training) / history length (contexts)
    series: np.ndarray  # [n] index of the series in the panel / context list
    y: np.ndarray | None = None  # [n, horizon] scaled targets (NaN past a series' end)


def lags_for(season: int, horizon: int, lags: int | None) -> int:
    return int(lags) if lags else int(min(max(2 * season, 2 * horizon, 8), 336))


def training_windows(panel, horizon: int, lags: int, max_windows: int, min_origin: int = 2) -> Windows:
    parts = []
    for i, s in enumerate(panel.series):
        n = len(s.values)
        origins = np.arange(min(min_origin, n - 1), n)  # origin t: history y[:t], targets y[t:t+horizon]
        if len(origins) == 0:
            continue
        front = np.concatenate([np.full(lags, s.values[0]), s.values, np.full(horizon, np.nan)])
        view = np.lib.stride_tricks.sliding_window_view(front, lags + horizon)[origins]
        parts.append((i, origins, view[:, :lags], view[:, lags:]))
    total = sum(len(p[1]) for p in parts)
    stride = max(1, int(np.ceil(total / max_windows)))
    xs, ys, scales, origins_all, series = [], [], [], [], []
    for i, origins, x, y in parts:
        keep = np.arange(len(origins))[::-1][::stride][::-1]  # strided from the end: the latest origins always stay
        x, y = x[keep], y[keep]
        level = np.abs(x[:, -min(lags, x.shape[1]):]).mean(axis=1)
        level = np.where(level > 1e-8, level, 1.0)
        xs.append(x / level[:, None])
        ys.append(y / level[:, None])
        scales.append(level)
        origins_all.append(origins[keep])
        series.append(np.full(len(keep), i))
    return Windows(np.concatenate(xs).astype(np.float32), np.concatenate(scales), np.concatenate(origins_all),
                   np.concatenate(series), np.concatenate(ys).astype(np.float32))


def context_windows(contexts: list[Context], lags: int) -> Windows:
    x = np.stack([padded(c.history, lags) for c in contexts])
    scale = np.array([window_scale(c.history, lags) for c in contexts])
    return Windows((x / scale[:, None]).astype(np.float32), scale, np.array([len(c.history) for c in contexts]),
                   np.arange(len(contexts)))
