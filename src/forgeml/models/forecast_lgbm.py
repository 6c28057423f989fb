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
from forgeml.models.forecast_covariates import context_inputs, covariate_meta, gather, window_inputs
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
    return gather(histories, w.series, w.origin + step - 1 - back) / w.scale


def _rows(w: Windows, histories, times_at, given: dict, horizon: int, season: int, freq: str):
    """The feature matrix of every (window, step): [n * horizon, width], window-major; ``given``: the windows'
    covariates (forgeml.models.forecast_covariates)."""
    from forgeml.features.series import calendar

    n = len(w.origin)
    season_tail = w.x[:, -min(max(season, 2), w.x.shape[1]):]
    summary = np.stack([season_tail.mean(axis=1), season_tail.std(axis=1), np.log1p(w.scale)], axis=1)
    blocks = []
    for k in range(1, horizon + 1):
        cols = [w.x, _season_back(w, histories, k, season)[:, None], summary, np.full((n, 1), k),
                calendar(times_at(k), freq)]
        if "known" in given:
            cols.append(given["known"][:, k - 1])
        if "past" in given:
            cols.append(given["past"])
        if "static" in given:
            cols.append(given["static"])
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
        meta = {"lags": lags, "season": panel.season, "freq": panel.freq, **covariate_meta(panel), "horizon": horizon}
        x = self._features(meta, w, [s.values for s in panel.series], panel, horizon, training=True)
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

    def _features(self, meta: dict, w: Windows, histories, source, horizon: int, training: bool) -> np.ndarray:
        """``source``: the panel (training: times and covariates at every point) or the Contexts."""
        import pandas as pd

        freq = meta["freq"]
        # times as nanoseconds, which pd.DatetimeIndex reads back (pandas 3 parses times in microseconds: their asi8
        # read as nanoseconds would put every time in January 1970 and the calendar would be constant)
        if training:  # each series' times continued past its end
            stamps = [pd.date_range(s.times[0], periods=len(s.times) + horizon, freq=freq).as_unit("ns").asi8
                      for s in source.series]
            times_at = lambda k: pd.DatetimeIndex(gather(stamps, w.series, w.origin + k - 1))  # noqa: E731
            given = window_inputs(meta, source, w, horizon)
        else:
            stamps = [pd.DatetimeIndex(c.future).as_unit("ns").asi8 for c in source]
            times_at = lambda k: pd.DatetimeIndex(gather(stamps, w.series, np.full(len(w.series), k - 1)))  # noqa: E731
            given = context_inputs(meta, source, horizon)
        return _rows(w, histories, times_at, given, horizon, meta["season"], freq)

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
    makes, as ``_features`` reads them: the calendar of each future time [N, H, C] and the covariates
    (forgeml.models.forecast_covariates)."""
    from forgeml.features.series import calendar

    steps = np.arange(horizon)
    cal = np.stack([calendar(c.future[np.clip(steps, 0, len(c.future) - 1)], meta["freq"]) for c in contexts])
    return {"calendar": cal.astype(np.float32), **context_inputs(meta, contexts, horizon)}


def _threads() -> int:
    from forgeml.cpus import usable_cpus

    return usable_cpus()
