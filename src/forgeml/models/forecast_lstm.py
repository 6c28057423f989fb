"""A recurrent global forecaster (the seeds' "RNN for time-series prediction"): an LSTM reads the scaled window one
point at a time, with its distance from the origin as a phase of the season beside it, and a linear head turns its
last state into the correction of the window's seasonal naive forecast for every step (direct multi-step, not step
by step).
Trained and saved as forecasting's networks are (forgeml.models.forecast_nets)."""
from __future__ import annotations

import math
from typing import Literal, Optional

import torch
from pydantic import Field
from torch import nn

from forgeml.models import LEARNERS
from forgeml.models.forecast_nets import (Covariates, NetForecaster, QuantileHead, WindowNetParams, covariates_of,
                                         network_quantiles, seasonal_positions)


class LSTMForecastParams(WindowNetParams):
    """An LSTM over lag windows of every series."""

    name: Literal["lstm"] = "lstm"
    hidden: int = Field(64, ge=4, description="LSTM state size")
    layers: int = Field(1, ge=1)


class WindowLSTM(nn.Module):
    def __init__(self, lags: int, horizon: int, season: int, hidden: int, layers: int,
                 covariates: Optional[Covariates] = None, quantiles: list[float] = (0.5,)):
        super().__init__()
        self.lstm = nn.LSTM(3, hidden, num_layers=layers, batch_first=True)
        self.covariates = covariates  # adds its step-by-step correction
        self.head = nn.Linear(hidden, horizon)
        self.register_buffer("naive", seasonal_positions(lags, horizon, season), persistent=False)
        self.quantiles = QuantileHead(lags, horizon, list(quantiles))  # last: the layers above draw their init as before
        phase = 2 * math.pi * torch.arange(lags, dtype=torch.float32) / max(season, 1)
        self.register_buffer("phase", torch.stack([phase.sin(), phase.cos()], dim=1), persistent=False)

    def forward(self, batch: dict) -> torch.Tensor:
        x = batch["window"]
        # the phase and the zero state are built from the input by broadcasting: expand(len(x)) or nn.LSTM's own
        # zero state make torch.export fix the batch size (ONNX export, forgeml.tasks.forecast_onnx)
        phase = torch.zeros_like(x).unsqueeze(-1) + self.phase
        steps = torch.cat([(x - 1).unsqueeze(-1), phase], dim=-1)  # level 1 -> 0
        zeros = torch.zeros_like(steps[:, :1, :1]).permute(1, 0, 2).expand(self.lstm.num_layers, -1, self.lstm.hidden_size)
        out, _ = self.lstm(steps, (zeros.contiguous(), zeros.contiguous()))
        forecast = x[:, self.naive] + self.head(out[:, -1])
        median = forecast if self.covariates is None else forecast + self.covariates(batch)
        return self.quantiles(x, median)


@LEARNERS.register("lstm", tags={"forecaster", "global", "many_series", "quantiles"})
class LSTMForecaster(NetForecaster):
    Params = LSTMForecastParams
    shape_keys = ("hidden", "layers")

    @staticmethod
    def network(meta: dict) -> WindowLSTM:
        return WindowLSTM(meta["lags"], meta["horizon"], meta["season"], meta["hidden"], meta["layers"], covariates_of(meta),
                          network_quantiles(meta))
