"""What forecasting's networks share: the training task forgeml's loop asks for (mean absolute error on windows), and
the learner around a network that reads a scaled window (forgeml.models.forecast_windows) and forecasts ``horizon``
values in the window's scale, as a correction to the window's seasonal naive forecast (so an untrained network
already forecasts like seasonal naive).

forgeml's loop trains them (optimizer, schedule, early stopping, precision, threads as in every torch run) on
windows of every series, validated on each series' latest windows; the weights and a JSON of the network's shape are
saved (safetensors, no pickle). They read the window only (no covariates).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from forgeml.core import Task
from forgeml.models.forecast_windows import context_windows, lags_for, training_windows
from forgeml.models.forecasters import Context, Forecaster

WEIGHTS, META = "forecaster.safetensors", "forecaster.json"


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
    """What forgeml's loop asks of a task, for windows: the mean absolute error in the window's scale (points past a
    series' end are NaN targets and left out)."""

    name = "forecast_windows"
    primary_metric = "loss"

    def __init__(self):
        super().__init__({})

    def step(self, model, batch: dict):
        pred, y = model(batch), batch["y"]
        seen = torch.isfinite(y)
        yield "model", (pred - torch.nan_to_num(y)).abs()[seen].mean()

    def validation_loss(self, raw, y) -> float:
        return float(np.nanmean(np.abs(raw - y)))

    def outputs(self, raw) -> dict:
        return {"pred": raw}

    def quick_metrics(self, y, outputs: dict) -> dict:
        return {}

    def metrics(self, y, outputs: dict) -> dict:
        return {}


class NetForecaster(Forecaster):
    """A window network: subclasses give ``network(meta) -> nn.Module`` and the keys of their params the network's
    shape takes (``shape_keys``)."""

    file = WEIGHTS
    shape_keys: tuple[str, ...] = ()
    exports_window = True  # forgeml export writes it as ONNX (window_network)

    @staticmethod
    def network(meta: dict) -> torch.nn.Module:
        raise NotImplementedError

    def fit(self, params, panel, horizon: int, seed: int, train=None, loop=None):
        """``train``: the run's train config; ``loop``: forgeml's training loop (forgeml.train.loop.fit)."""
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
        meta = {"lags": lags, "horizon": horizon, "season": panel.season,
                **{k: getattr(params, k) for k in self.shape_keys}}
        torch.manual_seed(seed)
        net = self.network(meta)
        # windows are small rows: a batch of 64 (the default for tables) makes an epoch needlessly slow
        cfg = train.model_copy(update={"seed": seed, "batch_size": 256 if train.batch_size == 64 else train.batch_size})
        info = loop(net, WindowLoss(), {"window": w.x[~latest]}, w.y[~latest], {"window": w.x[latest]}, w.y[latest], cfg)
        net.eval()
        return {"net": net, "meta": meta, "history": info.history}

    def forecast(self, model, contexts: list[Context], horizon: int) -> np.ndarray:
        from forgeml.models.inference import predict_raw

        if not contexts:
            return np.zeros((0, horizon))
        w = context_windows(contexts, model["meta"]["lags"])
        return predict_raw(model["net"], {"window": w.x}) * w.scale[:, None]

    def window_network(self, model):
        return model["net"], model["meta"]["lags"]

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
