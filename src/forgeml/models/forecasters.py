"""What every forecaster shares: the interface the forecasting family trains through, and the window the models see.

A forecaster is a ``core.Learner`` tagged ``forecaster`` that accepts ``series``. ``fit(params, panel, horizon,
seed)`` learns from the series as given (the family has cut them at the fitting origin); ``forecast(model, contexts,
horizon)`` returns [n, horizon] point forecasts, one row per ``Context``: a series' history up to its origin, the
times to forecast and the known covariates there. Local models (ETS, Theta...) keep parameters per series and
re-run their smoothing over each new history (a series they never saw is fitted on the spot); global models (LightGBM,
the N-BEATS-style network) learn one model over every series' windows.

Tags: ``forecast_baseline`` (a classic statistical baseline: the best of them on validation stands beside every run),
``global`` (one model over all series; it uses covariates), ``many_series`` (cheap enough to run by default on a
table of many series), ``opt_in`` (``model: auto`` leaves it out; it trains when named), ``quantiles`` (its fit takes the run's interval
``levels`` and it may learn their quantiles: ``forecast_quantiles``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from forgeml.core import Learner


@dataclass
class Context:
    """One forecast to make: a series' history up to the origin and what is known after it."""

    id: str
    history: np.ndarray  # float64 values up to the origin
    times: object  # pd.DatetimeIndex of the history
    future: object  # pd.DatetimeIndex of the horizon
    covariates: Optional[object] = None  # pd.DataFrame over history times (known + past columns)
    future_known: Optional[object] = None  # pd.DataFrame over future times (known columns)
    static: dict = field(default_factory=dict)


class Forecaster(Learner):
    accepts = frozenset({"series"})
    file = "forecaster.json"

    def fit(self, params, panel, horizon: int, seed: int):
        raise NotImplementedError

    def forecast(self, model, contexts: list[Context], horizon: int) -> np.ndarray:
        raise NotImplementedError

    def forecast_quantiles(self, model, contexts: list[Context], horizon: int, quantiles: list[float]):
        """[n, horizon, len(quantiles)]: the model's own quantiles of each forecast (a network trained with quantile
        outputs), or None when it gives point forecasts only (the family's intervals are then split conformal)."""
        return None

    def window_network(self, model):
        """(network, window length, the quantiles the last axis of its output [N, H, Q] holds) when the model is a
        torch network over a scaled window that forgeml export can write as ONNX (forgeml.tasks.forecast_onnx); None
        otherwise."""
        return None

    def window_inputs(self, model, horizon: int) -> list[dict]:
        """The inputs a window network reads beside the history (its covariates), as the manifest describes them."""
        return []

    def window_feeds(self, model, contexts: list["Context"], horizon: int) -> dict:
        """Those inputs' values for the Contexts predict makes."""
        return {}

    def graph_features(self, model, horizon: int):
        """When the model is trees over features a graph can compute from a history and a few more inputs (the global
        LightGBM), what forgeml export needs to write it as ONNX (forgeml.tasks.forecast_onnx_lgbm): an object with
        ``module()`` (torch: history [N, T] and the inputs by name -> feature rows [N * horizon, F] and the level
        [N, 1] the trees' output is multiplied by), ``inputs`` (the other inputs, as the manifest describes them),
        ``core(opset)`` (the trees as an ONNX model: input ``features``, one output) and ``feeds(contexts)`` (those
        inputs for the Contexts predict makes). None otherwise."""
        return None

    def save(self, model, folder) -> None:
        raise NotImplementedError

    def load(self, folder):
        raise NotImplementedError


def window_scale(history: np.ndarray, length: int) -> float:
    """The level a global model divides a window by: the mean absolute value of its last ``length`` points (1 when
    that is 0), so series of every size share one model and a trend is read relative to the recent level."""
    recent = np.abs(history[-length:])
    level = float(recent.mean()) if len(recent) else 1.0
    return level if level > 1e-8 else 1.0


def padded(history: np.ndarray, length: int) -> np.ndarray:
    """The last ``length`` values, padded at the front with the first value when the history is shorter."""
    if len(history) >= length:
        return history[-length:]
    return np.concatenate([np.full(length - len(history), history[0] if len(history) else 0.0), history])
