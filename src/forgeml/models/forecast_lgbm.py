"""A global LightGBM forecaster: one gradient-boosted model over every series' windows, direct multi-step.

Each training row is one (origin, step k) pair of a series: the last ``lags`` values divided by their mean level
(forgeml.models.forecast_windows), the value one season before the target point (in the same scale), the window's
mean and spread over the last season, the step k, the calendar of the target time, the known covariates at the
target time, the past-only covariates at the origin, and the series' static columns (categorical). The target is the
value at origin + k in the window's scale. One model answers every step, so errors do not compound as in a recursive
forecast. Saved as LightGBM's text model plus a JSON of what the features need (no pickle).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import Field

from forgeml.config.base import Strict
from forgeml.models import LEARNERS
from forgeml.models.forecast_windows import Windows, context_windows, lags_for, training_windows
from forgeml.models.forecasters import Context, Forecaster

MODEL, META = "forecaster.lgb.txt", "forecaster.json"


class LightGBMForecastParams(Strict):
    """LightGBM over lag windows of every series (global, direct multi-step)."""

    name: Literal["lightgbm_forecast"] = "lightgbm_forecast"
    lags: Optional[int] = Field(None, ge=2, description="values before the origin each row sees (default: two seasons "
                                                       "or two horizons, at least 8)")
    n_estimators: int = Field(300, ge=1)
    learning_rate: float = Field(0.05, gt=0)
    num_leaves: int = Field(31, ge=2)
    min_child_samples: int = Field(20, ge=1)
    objective: Literal["l2", "l1", "huber"] = Field("l2", description="the loss on the scaled targets")
    max_windows: int = Field(20000, ge=100, description="origins sampled (strided, latest kept) across all series")
    max_rows: int = Field(300000, ge=1000, description="and at most this many (origin, step) rows")


def _season_back(w: Windows, histories: list[np.ndarray], step: int, season: int) -> np.ndarray:
    """The value one season (or the fewest whole seasons) before origin + step, for each window, in its scale."""
    back = season * int(np.ceil(step / season)) if season > 1 else step
    return _gather(histories, w.series, w.origin + step - 1 - back) / w.scale


def _rows(w: Windows, histories, times_at, known_at, past_at, static_codes, horizon: int, season: int, freq: str):
    """The feature matrix of every (window, step): [n * horizon, width], window-major."""
    from forgeml.features.series import calendar

    n = len(w.origin)
    season_tail = w.x[:, -min(max(season, 2), w.x.shape[1]):]
    summary = np.stack([season_tail.mean(axis=1), season_tail.std(axis=1), np.log1p(w.scale)], axis=1)
    blocks = []
    for k in range(1, horizon + 1):
        cols = [w.x, _season_back(w, histories, k, season)[:, None], summary, np.full((n, 1), k),
                calendar(times_at(k), freq)]
        if known_at is not None:
            cols.append(known_at(k))
        if past_at is not None:
            cols.append(past_at)
        if static_codes is not None:
            cols.append(static_codes)
        blocks.append(np.concatenate(cols, axis=1))
    return np.stack(blocks, axis=1).reshape(n * horizon, -1).astype(np.float32)


@LEARNERS.register("lightgbm_forecast", tags={"forecaster", "global", "many_series"})
class LightGBMForecaster(Forecaster):
    Params = LightGBMForecastParams
    file = MODEL
    exports_graph = True  # forgeml export writes it as ONNX (graph_features)

    def fit(self, params, panel, horizon: int, seed: int, train=None, loop=None):
        import lightgbm as lgb

        lags = lags_for(panel.season, horizon, params.lags)
        w = training_windows(panel, horizon, lags, min(params.max_windows, max(100, params.max_rows // horizon)))
        statics = {c: sorted({str(s.static.get(c)) for s in panel.series}) for c in panel.static}
        meta = {"lags": lags, "season": panel.season, "freq": panel.freq, "known": panel.known, "past": panel.past,
                "static": statics, "horizon": horizon}
        x = self._features(meta, w, [s.values for s in panel.series], panel.series, horizon, training=True)
        y = w.y.reshape(-1)
        ok = np.isfinite(y)
        booster = lgb.train({"objective": params.objective, "learning_rate": params.learning_rate,
                             "num_leaves": params.num_leaves, "min_child_samples": params.min_child_samples,
                             "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1, "seed": seed,
                             "deterministic": True, "num_threads": _threads(), "verbose": -1},
                            lgb.Dataset(x[ok], y[ok], categorical_feature=self._categorical(meta, x.shape[1]) or "auto"),
                            num_boost_round=params.n_estimators)
        return {"booster": booster, "meta": meta}

    @staticmethod
    def _categorical(meta: dict, width: int) -> list[int]:
        return list(range(width - len(meta["static"]), width)) if meta["static"] else []

    def _features(self, meta: dict, w: Windows, histories, sources, horizon: int, training: bool) -> np.ndarray:
        """``sources``: the panel's Series (training: times and covariates at every point) or the Contexts."""
        import pandas as pd

        freq, known, past = meta["freq"], meta["known"], meta["past"]
        # times as nanoseconds, which pd.DatetimeIndex reads back (pandas 3 parses times in microseconds: their asi8
        # read as nanoseconds would put every time in January 1970 and the calendar would be constant)
        if training:  # each series' times continued past its end, and its covariates, as arrays
            stamps = [pd.date_range(s.times[0], periods=len(s.times) + horizon, freq=freq).as_unit("ns").asi8
                      for s in sources]
            times_at = lambda k: pd.DatetimeIndex(_gather(stamps, w.series, w.origin + k - 1))  # noqa: E731
            covs = [_matrix(s.covariates, known + past) for s in sources]
            known_at = (lambda k: _gather(covs, w.series, w.origin + k - 1)[:, :len(known)]) if known else None
            past_at = _gather(covs, w.series, w.origin - 1)[:, len(known):] if past else None
        else:
            stamps = [pd.DatetimeIndex(c.future).as_unit("ns").asi8 for c in sources]
            times_at = lambda k: pd.DatetimeIndex(_gather(stamps, w.series, np.full(len(w.series), k - 1)))  # noqa: E731
            future = [_matrix(c.future_known, known) for c in sources]
            known_at = (lambda k: _gather(future, w.series, np.full(len(w.series), k - 1))) if known else None
            history = [_matrix(c.covariates, past) for c in sources]
            past_at = _gather(history, w.series, w.origin - 1) if past else None
        codes = None
        if meta["static"]:
            codes = np.array([[_code(meta["static"][c], sources[i].static.get(c)) for c in meta["static"]] for i in w.series])
        return _rows(w, histories, times_at, known_at, past_at, codes, horizon, meta["season"], freq)

    def forecast(self, model, contexts: list[Context], horizon: int) -> np.ndarray:
        meta = model["meta"]
        if not contexts:
            return np.zeros((0, horizon))
        w = context_windows(contexts, meta["lags"])
        x = self._features(meta, w, [c.history for c in contexts], contexts, horizon, training=False)
        pred = model["booster"].predict(x, num_threads=_threads()).reshape(len(contexts), horizon)
        return pred * w.scale[:, None]

    def graph_features(self, model, horizon: int):
        from forgeml.models.forecast_lgbm_onnx import GraphFeatures

        return GraphFeatures(model["booster"], model["meta"], horizon)

    def save(self, model, folder) -> None:
        from forgeml import artifacts

        model["booster"].save_model(str(Path(folder) / MODEL))
        artifacts.write_json(Path(folder) / META, model["meta"])

    def load(self, folder):
        import lightgbm as lgb

        return {"booster": lgb.Booster(model_file=str(Path(folder) / MODEL)),
                "meta": json.loads((Path(folder) / META).read_text())}


def graph_inputs(meta: dict, contexts: list[Context], horizon: int) -> dict[str, np.ndarray]:
    """The inputs besides the history that the exported graph reads (forecast_lgbm_onnx), for the Contexts predict
    makes, as ``_features`` reads them: the calendar of each future time and the known covariates there [N, H, .],
    the past covariates at the history's last time [N, P], the static columns' level codes [N, S]."""
    from forgeml.features.series import calendar

    steps = np.arange(horizon)
    at = lambda rows, i: rows[np.clip(i, 0, len(rows) - 1)]  # noqa: E731  (as _gather clips)
    out = {"calendar": np.stack([calendar(at(c.future, steps), meta["freq"]) for c in contexts])}
    if meta["known"]:
        out["known"] = np.stack([at(_matrix(c.future_known, meta["known"]), steps) for c in contexts])
    if meta["past"]:
        out["past"] = np.stack([at(_matrix(c.covariates, meta["past"]), len(c.history) - 1) for c in contexts])
    if meta["static"]:
        out["static"] = np.array([[_code(levels, c.static.get(col)) for col, levels in meta["static"].items()]
                                  for c in contexts])
    return {k: v.astype(np.float32) for k, v in out.items()}


def _threads() -> int:
    from forgeml.cpus import usable_cpus

    return usable_cpus()


def _matrix(frame, columns: list[str]) -> np.ndarray:
    if frame is None or not columns or len(frame) == 0:
        return np.full((1, len(columns)), np.nan)
    return frame[columns].to_numpy(dtype=np.float64)


def _gather(arrays: list[np.ndarray], series: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """arrays[series[j]][positions[j]] for every j, positions clipped to each array (a covariate past its end keeps
    its last value)."""
    out = np.empty((len(series),) + arrays[0].shape[1:], dtype=arrays[0].dtype)
    for i in np.unique(series):
        rows = series == i
        out[rows] = arrays[i][np.clip(positions[rows], 0, len(arrays[i]) - 1)]
    return out


def _code(levels: list[str], value) -> float:
    try:
        return float(levels.index(str(value)))
    except ValueError:
        return np.nan
