"""The classic statistical forecasters, local to each series (statsmodels): seasonal naive, ETS chosen by AICc, the
Theta method and a small seasonal ARIMA search. They are the baselines beside every forecasting run, and candidates
of ``model: auto`` too.

Why statsmodels and not statsforecast: statsforecast 2.1.1 requires pandas < 3 (and fugue), which would downgrade the
pandas every other part of forgeml runs on. benchmarks/forecasting.py runs statsforecast itself, in its own virtual
environment, beside these.

Fitting estimates each series' parameters on the last 8 seasons (at least 96 points) of the history the family gives
(up to the fitting origin): the recent dynamics, and far less work on an 80-year monthly history. A forecast from a
later origin re-runs the smoothing from that same start over the longer history with the same parameters, so a
backtest costs one estimation per series. Theta is cheap and refits at every origin. A series the model never saw
(predict on new ids), or a history that starts after the fit did, is estimated on the spot.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
import warnings
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import Field

from forgeml.config.base import Strict
from forgeml.models import LEARNERS
from forgeml.models.forecasters import Context, Forecaster

FILE = "forecaster.json"
TAIL_SEASONS, TAIL_MIN = 8, 96  # a local model estimates its parameters on the last 8 seasons, at least 96 points


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The value one season earlier (the last value when the season is 1 or longer than the history)."""
    if season <= 1 or len(history) < season:
        return np.full(horizon, history[-1])
    last = history[-season:]
    return np.array([last[k % season] for k in range(horizon)])


@contextmanager
def quiet():
    """statsmodels warns on every difficult optimization; the AICc comparison handles those fits."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        warnings.showwarning = lambda *args, **kwargs: None  # statsmodels sets its own filters inside fit
        yield


def lowest_aicc(specs: list[dict], model_of) -> dict:
    """Fit ``model_of(spec)`` for each spec; the spec with the lowest AICc, with its fitted parameters ({} when none
    fits)."""
    best = None
    with quiet():
        for spec in specs:
            try:
                fitted = model_of(spec).fit(disp=False, maxiter=100)
            except (ValueError, np.linalg.LinAlgError):
                continue
            if np.isfinite(fitted.aicc) and (best is None or fitted.aicc < best["aicc"]):
                best = {**spec, "params": [float(p) for p in fitted.params], "aicc": float(fitted.aicc)}
    return best or {}


def _parallel(fn, items: list, n_jobs: Optional[int] = None) -> list:
    """fn over items, on the usable CPUs when there are enough items to pay for the worker processes."""
    from forgeml.cpus import usable_cpus

    jobs = n_jobs or usable_cpus()
    if jobs <= 1 or len(items) < 8:
        return [fn(i) for i in items]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=jobs, batch_size=max(1, len(items) // (4 * jobs)))(delayed(fn)(i) for i in items)


class LocalForecaster(Forecaster):
    """A model fitted per series: ``estimate(history, season, params) -> spec`` (JSON) and ``predict(spec, history,
    horizon, season) -> [horizon]``. Its parameters are estimated again for the test windows, on fit + validation,
    even on many series: keeping the validation fit's (statsforecast's refit=False) made ETS's test MASE on
    us_employment 0.527 against 0.350 refitted. The validation fit's last 8 seasons start in October 2007 and hold the
    2008-09 recession, the refit's start after it: for one series the first chose a damped trend still heading down,
    the second a rising one."""

    file = FILE

    def estimate(self, history: np.ndarray, season: int, params) -> dict:
        """The series' parameters, from ``history`` (its last TAIL_SEASONS seasons at most); {} when none fit."""
        return {}

    def predict(self, spec: dict, history: np.ndarray, horizon: int, season: int, params) -> np.ndarray:
        raise NotImplementedError

    def estimate_tail(self, history: np.ndarray, times, season: int, params) -> dict:
        """``estimate`` on the series' last part (TAIL_SEASONS seasons, at least TAIL_MIN points: the recent
        dynamics, and much faster on long monthly histories), remembering where that part starts."""
        start = max(0, len(history) - max(TAIL_SEASONS * season, TAIL_MIN))
        spec = self.estimate(history[start:], season, params)
        return {**spec, "start": str(times[start])} if spec and times is not None else spec

    def fit(self, params, panel, horizon: int, seed: int):
        work = [(s.id, s.values, s.times) for s in panel.series]
        specs = _parallel(lambda item: self.estimate_tail(item[1], item[2], panel.season, params), work) \
            if self.estimates else [{} for _ in work]
        return {"name": self.name, "season": panel.season, "params": params.model_dump(mode="json"),
                "series": {item[0]: spec for item, spec in zip(work, specs)}}

    estimates = True

    def forecast(self, model, contexts: list[Context], horizon: int) -> np.ndarray:
        import pandas as pd

        params = type(self).Params.model_validate(model["params"])
        season = model["season"]

        def one(ctx: Context) -> np.ndarray:
            spec, history = model["series"].get(ctx.id), ctx.history
            at = ctx.times.get_indexer([pd.Timestamp(spec["start"])])[0] if spec and spec.get("start") else 0
            if self.estimates and (spec is None or at < 0):  # a new series, or a history starting after the fit did
                spec = self.estimate_tail(ctx.history, ctx.times, season, params)
                at = ctx.times.get_indexer([pd.Timestamp(spec["start"])])[0] if spec.get("start") else 0
            out = np.asarray(self.predict(spec or {}, history[max(at, 0):], horizon, season, params), dtype=np.float64)
            return out if np.isfinite(out).all() else seasonal_naive(ctx.history, horizon, season)

        return np.stack([one(c) for c in contexts]) if contexts else np.zeros((0, horizon))

    def save(self, model, folder) -> None:
        from forgeml import artifacts

        artifacts.write_json(Path(folder) / FILE, model)

    def load(self, folder):
        return json.loads((Path(folder) / FILE).read_text())


# ------------------------------------------------------------------------------------------------ seasonal naive
class SeasonalNaiveParams(Strict):
    """Seasonal naive: each future point repeats the value one season earlier (the last value without a season)."""

    name: Literal["seasonal_naive"] = "seasonal_naive"


@LEARNERS.register("seasonal_naive", tags={"forecaster", "forecast_baseline", "many_series"})
class SeasonalNaive(LocalForecaster):
    Params = SeasonalNaiveParams
    estimates = False

    def predict(self, spec, history, horizon, season, params):
        return seasonal_naive(history, horizon, season)


# ------------------------------------------------------------------------------------------------ ETS
class ETSParams(Strict):
    """Exponential smoothing (error, trend, season) chosen per series by AICc, as R's ets() and statsforecast's
    AutoETS do, over additive errors with no / additive / damped trend and no / additive / multiplicative season
    (multiplicative only for positive series)."""

    name: Literal["ets"] = "ets"
    damped: bool = Field(True, description="also try a damped trend")
    multiplicative: bool = Field(True, description="also try a multiplicative season on positive series")


def seasonal_strength(history: np.ndarray, season: int) -> float:
    """Hyndman's strength of seasonality, 1 - var(remainder) / var(season + remainder), from a moving-average
    decomposition of the last few seasons: near 0 without a season, near 1 with a clear one."""
    if season <= 1 or len(history) < 2 * season:
        return 0.0
    from statsmodels.tsa.seasonal import seasonal_decompose

    with quiet():
        parts = seasonal_decompose(history[-min(len(history), 6 * season):], period=season, two_sided=True)
    ok = np.isfinite(parts.resid)
    detrended = (parts.seasonal + parts.resid)[ok]
    return float(max(0.0, 1 - np.var(parts.resid[ok]) / np.var(detrended))) if np.var(detrended) > 0 else 0.0


def _ets_specs(history: np.ndarray, season: int, params: ETSParams) -> list[dict]:
    """The models AICc chooses from: with a season only when the series shows one (strength above 0.3), and then
    only seasonal ones (the test stands in for the non-seasonal fits, a third of the work)."""
    trends = [None, "add"] + (["damped"] if params.damped else [])
    seasons = [None]
    if seasonal_strength(history, season) > 0.3:
        seasons = ["add"] + (["mul"] if params.multiplicative and (history > 0).all() else [])
    return [{"trend": t, "seasonal": s} for t in trends for s in seasons]


def _ets_model(history: np.ndarray, spec: dict, season: int):
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    trend = spec["trend"]
    return ETSModel(history, error="add", trend="add" if trend == "damped" else trend, damped_trend=trend == "damped",
                    seasonal=spec["seasonal"], seasonal_periods=season if spec["seasonal"] else None)


@LEARNERS.register("ets", tags={"forecaster", "forecast_baseline", "many_series"})
class ETS(LocalForecaster):
    Params = ETSParams

    def estimate(self, history, season, params):
        return lowest_aicc(_ets_specs(history, season, params), lambda spec: _ets_model(history, spec, season))

    def predict(self, spec, history, horizon, season, params):
        if not spec:
            return seasonal_naive(history, horizon, 1)
        try:
            with quiet():
                return np.asarray(_ets_model(history, spec, season).smooth(np.asarray(spec["params"])).forecast(horizon))
        except (ValueError, np.linalg.LinAlgError):
            return seasonal_naive(history, horizon, season)


# ------------------------------------------------------------------------------------------------ Theta
class ThetaParams(Strict):
    """The Theta method (Assimakopoulos & Nikolopoulos 2000; statsmodels' ThetaModel): simple exponential smoothing
    plus half the linear trend, on the series seasonally adjusted when a test finds a season."""

    name: Literal["theta"] = "theta"


@LEARNERS.register("theta", tags={"forecaster", "forecast_baseline", "many_series"})
class Theta(LocalForecaster):
    Params = ThetaParams
    estimates = False

    def predict(self, spec, history, horizon, season, params):
        from statsmodels.tsa.forecasting.theta import ThetaModel

        period = season if season > 1 and len(history) >= 2 * season else 1
        method = "auto" if (history > 0).all() else "additive"
        try:
            with quiet():
                fitted = ThetaModel(history, period=period, deseasonalize=period > 1, method=method).fit()
                return np.asarray(fitted.forecast(horizon))
        except (ValueError, np.linalg.LinAlgError):
            return seasonal_naive(history, horizon, season)


# ------------------------------------------------------------------------------------------------ ARIMA
class ARIMAParams(Strict):
    """Seasonal ARIMA with a small AICc search over four orders (statsmodels' SARIMAX, first differences, a seasonal
    difference when the series holds three seasons); not R's full stepwise auto.arima. Model auto leaves it out on
    more than ``task.slow_max_series`` series or a season above 12 (it is the slowest baseline)."""

    name: Literal["arima"] = "arima"


ARIMA_ORDERS = [((0, 1, 1), (0, 1, 1)), ((1, 1, 0), (1, 1, 0)), ((1, 1, 1), (0, 1, 1)), ((2, 1, 0), (0, 1, 1))]


def _arima_model(history: np.ndarray, spec: dict, season: int):
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    seasonal = tuple(spec["seasonal"]) + (season,) if spec["seasonal"] else (0, 0, 0, 0)
    return SARIMAX(history, order=tuple(spec["order"]), seasonal_order=seasonal, trend="n",
                   enforce_stationarity=False, enforce_invertibility=False)


@LEARNERS.register("arima", tags={"forecaster", "forecast_baseline"})
class ARIMA(LocalForecaster):
    Params = ARIMAParams

    def estimate(self, history, season, params):
        seasonal = season > 1 and len(history) >= 3 * season
        specs = [{"order": o, "seasonal": s if seasonal else None} for o, s in ARIMA_ORDERS]
        return lowest_aicc(specs, lambda spec: _arima_model(history, spec, season))

    def predict(self, spec, history, horizon, season, params):
        if not spec:
            return seasonal_naive(history, horizon, season)
        try:
            with quiet():
                return np.asarray(_arima_model(history, spec, season).smooth(np.asarray(spec["params"])).forecast(horizon))
        except (ValueError, np.linalg.LinAlgError):
            return seasonal_naive(history, horizon, season)
