"""What forecasting's networks share: the training task forgeml's loop asks for (mean absolute error on windows, then
pinball loss for the quantiles), and the learner around a network that reads a scaled window
(forgeml.models.forecast_windows) and forecasts ``horizon`` values in the window's scale, as a correction to the
window's seasonal naive forecast (so an untrained network already forecasts like seasonal naive).

With ``quantiles: true`` (the default) every network ends with a QuantileHead: the quantiles of the run's interval
levels around its forecast, trained after the network on its forecasts, so the forecast is what it would be without
them. Two other designs were measured on benchmarks/forecast_quantiles.py's 12 runs (6 series sets x N-BEATS, LSTM)
and moved the forecast: every quantile an output of the network, trained jointly on the summed pinball loss (mean
test MASE 0.930 against 0.879 without quantiles; elecdemand N-BEATS 0.462 against 0.319), and this head trained
jointly with the network, the forecast detached (0.891; elecdemand N-BEATS 0.489: the head's gradients still share
the loop's gradient-norm clipping).

forgeml's loop trains them (optimizer, schedule, early stopping, precision, threads as in every torch run) on
windows of every series, validated on each series' latest windows; the weights and a JSON of the network's shape are
saved (safetensors, no pickle).

Beside the window they read the run's covariates (``covariates: true``, the default, when the run has some): the
known covariates at each point to forecast, the past-only ones at the origin, and the static columns one-hot. A small
network shared by every step turns them into a correction of that step's forecast (``Covariates``). Known and past
values are standardized with the training windows' mean and spread; a missing value reads as the mean (0).

Why a step-by-step correction and not the covariates concatenated to the window (N-BEATSx's way): on daily stores
with a known promotion (tests/conftest.py's promo_panel, 30 epochs) N-BEATS' test MASE was 0.418 with the step
correction, 0.505 with the concatenation and 0.758 without covariates; the LSTM's 0.618, 0.998 and 0.897. The
calendar of each step as one more input made N-BEATS worse on both sets it was tried on (0.526 on the stores; on
elecdemand 0.703 against 0.606 without it) and is not read.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from pydantic import Field
from torch import nn

from forgeml.config.base import Strict
from forgeml.core import Task
from forgeml.models.forecast_covariates import context_inputs, covariate_meta, input_specs, window_inputs
from forgeml.models.forecast_windows import context_windows, lags_for, training_windows
from forgeml.models.forecasters import Context, Forecaster

WEIGHTS, META = "forecaster.safetensors", "forecaster.json"


class WindowNetParams(Strict):
    """What every window network takes (each adds its shape and its ``name``)."""

    lags: Optional[int] = Field(None, ge=2, description="window length (default: two seasons or two horizons, at least 8)")
    max_windows: int = Field(20000, ge=100, description="origins sampled (strided, latest kept) across all series")
    covariates: bool = Field(True, description="read the run's known, past and static covariates beside the window "
                                               "(when it has some)")
    quantiles: bool = Field(True, description="also learn the quantiles of the run's interval levels (a head trained "
                                              "after the network; the forecast stays the same), for task.intervals")


NO_COVARIATES = {"known": [], "past": [], "static": {}}


class Covariates(nn.Module):
    """What the covariates add to a network's forecast, step by step: one small network, shared by every step k,
    reads the known covariates at k, the past ones at the origin (standardized; missing -> 0) and each static
    column one-hot (an unseen level: all zeros), and gives a correction to step k's forecast (in the window's scale,
    so a covariate's effect scales with the series' level, as a promotion's lift does). Its last layer starts at
    zero: an untrained network forecasts as it would without covariates. ``meta``:
    forgeml.models.forecast_covariates.covariate_meta plus the training means and spreads (``known_mean``,
    ``known_std``, ``past_mean``, ``past_std``)."""

    def __init__(self, meta: dict, horizon: int, hidden: int = 32):
        super().__init__()
        self.known, self.past, self.horizon = len(meta["known"]), len(meta["past"]), horizon
        for kind in ("known", "past"):
            if meta[kind]:
                self.register_buffer(f"{kind}_mean", torch.tensor(meta[f"{kind}_mean"], dtype=torch.float32))
                self.register_buffer(f"{kind}_std", torch.tensor(meta[f"{kind}_std"], dtype=torch.float32))
        self.levels = [len(levels) for levels in meta["static"].values()]
        self.register_buffer("codes", torch.arange(max(self.levels, default=0), dtype=torch.float32), persistent=False)
        width = self.known + self.past + sum(self.levels)
        self.effect = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.effect[-1].weight)
        nn.init.zeros_(self.effect[-1].bias)

    @staticmethod
    def _standard(x, mean, std):
        z = (x - mean) / std
        return torch.where(torch.isnan(z), torch.zeros_like(z), z)

    def forward(self, batch: dict) -> torch.Tensor:
        """[N, H]: each step's correction."""
        steps = []  # [N, H, .] parts
        if self.known:
            steps.append(self._standard(batch["known"], self.known_mean, self.known_std))
        once = []  # [N, .] parts, the same at every step
        if self.past:
            once.append(self._standard(batch["past"], self.past_mean, self.past_std))
        for j, n in enumerate(self.levels):
            once.append((batch["static"][:, j:j + 1] == self.codes[:n]).to(torch.float32))
        if once:
            flat = torch.cat(once, dim=1)
            # broadcast by adding zeros shaped from the input: expand(N, H, .) would fix N in torch.export
            steps.append(flat[:, None, :] + torch.zeros(self.horizon, 1, device=flat.device))
        return self.effect(torch.cat(steps, dim=2)).squeeze(-1)


def attributes(meta: dict, n_series: int) -> dict:
    """``meta`` without the static columns that name each series apart (a level per series: an identity, not an
    attribute). One-hot, such a column gives every series its own bias, which no new series can use: on fpp3's
    us_employment (148 series, each its own Title) it moved N-BEATS' test MASE from 0.347 to 0.390 and the LSTM's
    from 0.362 to 0.375. LightGBM still reads it, as a categorical feature."""
    static = {c: levels for c, levels in meta["static"].items() if not (n_series > 1 and len(levels) == n_series)}
    return {**meta, "static": static}


def read_covariates(meta: dict) -> dict:
    """What a network's saved shape says it reads (runs from before covariates read none)."""
    return meta.get("covariates", NO_COVARIATES)


def covariates_of(meta: dict) -> Optional[Covariates]:
    """The network's covariate reader, from its saved shape (None when it reads none)."""
    cov = read_covariates(meta)
    return Covariates(cov, meta["horizon"]) if cov["known"] or cov["past"] or cov["static"] else None


def covariate_stats(meta: dict, given: dict[str, np.ndarray]) -> dict:
    """``meta`` with the mean and spread of the known and past covariates over the training windows."""
    out = dict(meta)
    for kind, axes in (("known", (0, 1)), ("past", (0,))):
        if meta[kind]:
            with np.errstate(all="ignore"):
                mean = np.nan_to_num(np.nanmean(given[kind], axis=axes))
                std = np.nan_to_num(np.nanstd(given[kind], axis=axes))
            out[f"{kind}_mean"], out[f"{kind}_std"] = mean.tolist(), np.where(std > 1e-8, std, 1.0).tolist()
    return out


def quantile_points(levels: list[int]) -> list[float]:
    """The quantiles a network learns for the run's interval levels (percent): the median and each interval's ends."""
    ends = {round((100 + sign * lv) / 200, 6) for lv in levels for sign in (-1, 1)}
    return sorted({0.5} | ends)


GAP_START = 3.0  # softplus(0 - 3) = 0.049: an untrained head's quantiles sit about 5% of the window's level apart


class QuantileHead(nn.Module):
    """The quantiles around a network's forecast ``median`` [N, H] -> [N, H, Q]. A small network of its own reads the
    scaled window and gives, per step, the gap between each quantile and the next, positive (a softplus), so
    quantiles never cross. It trains after the rest of the network, on that network's forecasts (NetForecaster.fit):
    the forecast is the one the network gives without quantiles. Its last layer starts at zero. With the median
    alone (Q = 1: a network trained without quantiles) it has no weights and returns the median."""

    def __init__(self, lags: int, horizon: int, quantiles: list[float], hidden: int = 64):
        super().__init__()
        self.horizon, self.size, self.mid = horizon, len(quantiles), quantiles.index(0.5)
        # off while the network trains: the forecast then goes through exactly the operations it does without
        # quantiles (the same floating-point sums; routed through the quantiles' concatenation, the gradients' float
        # rounding differed, and 30 epochs on elecdemand turned it into test MASE 0.362 against 0.319)
        self.active = True
        if self.size > 1:
            self.spread = nn.Sequential(nn.Linear(lags, hidden), nn.ReLU(), nn.Linear(hidden, horizon * (self.size - 1)))
            nn.init.zeros_(self.spread[-1].weight)
            nn.init.zeros_(self.spread[-1].bias)

    def forward(self, window: torch.Tensor, median: torch.Tensor) -> torch.Tensor:
        if self.size == 1 or not self.active:
            return median.unsqueeze(-1)
        gaps = nn.functional.softplus(self.spread(window) - GAP_START).unflatten(1, (self.horizon, self.size - 1))
        base = median.detach().unsqueeze(-1)
        parts = [median.unsqueeze(-1)]
        if self.mid + 1 < self.size:
            parts.append(base + torch.cumsum(gaps[..., self.mid:], dim=-1))
        if self.mid > 0:
            parts.insert(0, base - torch.flip(torch.cumsum(torch.flip(gaps[..., :self.mid], dims=[-1]), dim=-1), dims=[-1]))
        return torch.cat(parts, dim=-1)


def network_quantiles(meta: dict) -> list[float]:
    """The quantiles a network's saved shape says it outputs (runs from before quantile heads: the median alone)."""
    return meta.get("quantiles", [0.5])


def seasonal_positions(lags: int, horizon: int, season: int) -> torch.Tensor:
    """Where the seasonal naive forecast of each step sits in the window: one season back, repeated."""
    period = season if 1 < season <= lags else 1
    return torch.tensor([lags - period + (k % period) for k in range(horizon)])


def history_level(history: torch.Tensor, lags: int) -> torch.Tensor:
    """forecasters.window_scale in torch, for exported graphs: [N, 1], the mean absolute value of each history's last
    ``lags`` points (those that exist), 1 where that is 0. Points are counted from the end instead of sliced by the
    history's length, which would fix that length in torch.export."""
    back = torch.flip(torch.cumsum(torch.ones_like(history[:1]), dim=1), dims=[1])  # [1, T]: T ... 1
    recent = (back <= lags).to(history.dtype)
    level = (history.abs() * recent).sum(dim=1, keepdim=True) / recent.sum(dim=1, keepdim=True)
    return torch.where(level > 1e-8, level, torch.ones_like(level))


class WindowLoss(Task):
    """What forgeml's loop asks of a task, for windows ([N, H, Q] outputs, the quantiles ``quantiles``), in the
    window's scale: for ``part`` "median", the median's mean absolute error; for "spread", twice the pinball loss of
    each other quantile, averaged. Points past a series' end are NaN targets and left out."""

    name = "forecast_windows"
    primary_metric = "loss"

    def __init__(self, quantiles: list[float] = (0.5,), part: str = "median"):
        super().__init__({})
        self.quantiles, self.part = list(quantiles), part
        mid = self.quantiles.index(0.5)
        self.columns = [mid] if part == "median" else [i for i in range(len(self.quantiles)) if i != mid]
        self.levels = [self.quantiles[i] for i in self.columns]

    def _columns(self, out) -> list[int]:
        return [0] if out.shape[-1] == 1 else self.columns  # the median alone (QuantileHead off, or Q = 1)

    def step(self, model, batch: dict):
        pred, y = model(batch), batch["y"]
        seen = torch.isfinite(y)
        diff = torch.nan_to_num(y).unsqueeze(-1) - pred[..., self._columns(pred)]
        q = torch.tensor(self.levels, dtype=pred.dtype, device=pred.device)
        yield "model", (2 * torch.maximum(q * diff, (q - 1) * diff))[seen].mean()

    def validation_loss(self, raw, y) -> float:
        diff = y[..., None] - raw[..., self._columns(raw)]
        q = np.asarray(self.levels)
        return float(np.nanmean(2 * np.maximum(q * diff, (q - 1) * diff)))

    def outputs(self, raw) -> dict:
        return {"pred": raw}

    def quick_metrics(self, y, outputs: dict) -> dict:
        return {}

    def metrics(self, y, outputs: dict) -> dict:
        return {}


class HeadAlone(nn.Module):
    """A QuantileHead as its training sees it: the batch holds the window and the network's forecast."""

    def __init__(self, head: QuantileHead):
        super().__init__()
        self.head = head

    def forward(self, batch: dict) -> torch.Tensor:
        return self.head(batch["window"], batch["median"])


class NetForecaster(Forecaster):
    """A window network: subclasses give ``network(meta) -> nn.Module`` and the keys of their params the network's
    shape takes (``shape_keys``)."""

    file = WEIGHTS
    shape_keys: tuple[str, ...] = ()
    exports_window = True  # forgeml export writes it as ONNX (window_network)

    @staticmethod
    def network(meta: dict) -> torch.nn.Module:
        raise NotImplementedError

    def fit(self, params, panel, horizon: int, seed: int, train=None, loop=None, levels: list[int] = ()):
        """``train``: the run's train config; ``loop``: forgeml's training loop (forgeml.train.loop.fit); ``levels``:
        the run's interval levels (percent), whose quantiles the network learns beside the median."""
        lags = lags_for(panel.season, horizon, params.lags)
        w = training_windows(panel, horizon, lags, params.max_windows)
        # each series' latest origins validate (their targets are the series' last points), the rest train
        latest = np.zeros(len(w.origin), dtype=bool)
        for i, s in enumerate(panel.series):
            mine = np.flatnonzero(w.series == i)
            latest[mine[w.origin[mine] >= len(s.values) - horizon]] = True
        if latest.all() or not latest.any():
            latest[:] = False
            latest[-max(1, len(latest) // 10):] = True
        cov = attributes(covariate_meta(panel), len(panel.series)) if params.covariates else NO_COVARIATES
        given = window_inputs(cov, panel, w, horizon)
        meta = {"lags": lags, "horizon": horizon, "season": panel.season, "covariates": covariate_stats(cov, given),
                "quantiles": quantile_points(levels) if params.quantiles else [0.5],
                **{k: getattr(params, k) for k in self.shape_keys}}
        torch.manual_seed(seed)
        net = self.network(meta)
        # windows are small rows: a batch of 64 (the default for tables) makes an epoch needlessly slow
        cfg = train.model_copy(update={"seed": seed, "batch_size": 256 if train.batch_size == 64 else train.batch_size})
        x = {"window": w.x, **given}
        train_x, val_x = {k: v[~latest] for k, v in x.items()}, {k: v[latest] for k, v in x.items()}
        net.quantiles.active = False  # the median alone while the network trains
        info = loop(net, WindowLoss(meta["quantiles"], "median"), train_x, w.y[~latest], val_x, w.y[latest], cfg)
        net.quantiles.active = True
        net.eval()
        if len(meta["quantiles"]) > 1:  # then the quantiles around the trained forecast, which stays as it is
            self._fit_quantiles(net, meta["quantiles"], train_x, w.y[~latest], val_x, w.y[latest], cfg, loop)
        return {"net": net, "meta": meta, "history": info.history}

    @staticmethod
    def _fit_quantiles(net, quantiles: list[float], train_x: dict, train_y, val_x: dict, val_y, cfg, loop) -> None:
        """Train the network's QuantileHead on its (frozen) forecasts: the head reads only the window and the
        forecast, so the forecasts are computed once and the head trains alone, a small network on small rows."""
        from forgeml.models.inference import predict_raw

        net.quantiles.active = False
        given = [{"window": part["window"], "median": predict_raw(net, part)[..., 0].astype(np.float32)}
                 for part in (train_x, val_x)]
        net.quantiles.active = True
        # batches of 1024: 4x fewer steps than 256 for the same loss (20,000 monthly windows: 1.5 s against 6.5 s)
        cfg = cfg.model_copy(update={"batch_size": max(cfg.batch_size, 1024)})
        loop(HeadAlone(net.quantiles), WindowLoss(quantiles, "spread"), given[0], train_y, given[1], val_y, cfg)
        net.quantiles.eval()

    def outputs(self, model, contexts: list[Context], horizon: int) -> np.ndarray:
        """[n, horizon, Q]: the network's quantiles (network_quantiles) of each forecast, in the series' units."""
        from forgeml.models.inference import predict_raw

        meta = model["meta"]
        if not contexts:
            return np.zeros((0, horizon, len(network_quantiles(meta))))
        w = context_windows(contexts, meta["lags"])
        given = context_inputs(read_covariates(meta), contexts, horizon)
        return predict_raw(model["net"], {"window": w.x, **given}) * w.scale[:, None, None]

    def forecast(self, model, contexts: list[Context], horizon: int) -> np.ndarray:
        return self.outputs(model, contexts, horizon)[..., network_quantiles(model["meta"]).index(0.5)]

    def forecast_quantiles(self, model, contexts: list[Context], horizon: int, quantiles: list[float]):
        learned = network_quantiles(model["meta"])
        if len(learned) == 1:
            return None
        out = self.outputs(model, contexts, horizon)
        # a quantile it did not learn: linear between the two nearest it did (beyond them, the outermost)
        at = np.interp(quantiles, learned, np.arange(len(learned)))
        below = np.floor(at).astype(int)
        above = np.minimum(below + 1, len(learned) - 1)
        return out[..., below] * (1 - (at - below)) + out[..., above] * (at - below)

    def window_network(self, model):
        return model["net"], model["meta"]["lags"], network_quantiles(model["meta"])

    def window_inputs(self, model, horizon: int) -> list[dict]:
        return input_specs(read_covariates(model["meta"]), horizon)

    def window_feeds(self, model, contexts: list[Context], horizon: int) -> dict:
        return context_inputs(read_covariates(model["meta"]), contexts, horizon)

    def save(self, model, folder) -> None:
        from forgeml import artifacts

        artifacts.save_tensors(Path(folder) / WEIGHTS, model["net"].state_dict(), metadata={"model": self.name})
        artifacts.write_json(Path(folder) / META, model["meta"])

    def load(self, folder):
        from forgeml import artifacts

        meta = json.loads((Path(folder) / META).read_text())
        net = self.network(meta)
        net.load_state_dict(artifacts.load_tensors(Path(folder) / WEIGHTS))
        net.eval()
        return {"net": net, "meta": meta}
