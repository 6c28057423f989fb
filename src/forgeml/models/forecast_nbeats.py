"""An N-BEATS-style global network (Oreshkin et al. 2020, the generic architecture): a stack of fully connected
blocks, each reading what the blocks before it left unexplained of the window (its backcast is subtracted) and adding
its part of the forecast. With covariates, their step-by-step correction is added (forgeml.models.forecast_nets.
Covariates). Trained and saved as forecasting's networks are (forgeml.models.forecast_nets)."""
from __future__ import annotations

from typing import Literal, Optional

import torch
from pydantic import Field
from torch import nn

from forgeml.models import LEARNERS
from forgeml.models.forecast_nets import (Covariates, NetForecaster, QuantileHead, WindowNetParams, covariates_of,
                                         network_quantiles, seasonal_positions)


class NBeatsParams(WindowNetParams):
    """N-BEATS (generic blocks) on lag windows of every series."""

    name: Literal["nbeats"] = "nbeats"
    blocks: int = Field(3, ge=1)
    width: int = Field(256, ge=8)
    layers: int = Field(2, ge=1, description="hidden layers per block")


class NBeats(nn.Module):
    def __init__(self, lags: int, horizon: int, season: int, blocks: int, width: int, layers: int,
                 covariates: Optional[Covariates] = None, quantiles: list[float] = (0.5,)):
        super().__init__()
        self.lags, self.horizon, self.covariates = lags, horizon, covariates

        def block():
            dims = [lags] + [width] * layers
            body = [m for a, b in zip(dims, dims[1:]) for m in (nn.Linear(a, b), nn.ReLU())]
            return nn.Sequential(*body, nn.Linear(width, lags + horizon))

        self.blocks = nn.ModuleList(block() for _ in range(blocks))
        self.register_buffer("naive", seasonal_positions(lags, horizon, season), persistent=False)
        self.quantiles = QuantileHead(lags, horizon, list(quantiles))  # last: the layers above draw their init as before

    def forward(self, batch: dict) -> torch.Tensor:
        x = batch["window"]
        residual, forecast = x, x[:, self.naive]
        for block in self.blocks:
            out = block(residual)
            residual = residual - out[:, :self.lags]
            forecast = forecast + out[:, self.lags:]
        median = forecast if self.covariates is None else forecast + self.covariates(batch)
        return self.quantiles(x, median)


@LEARNERS.register("nbeats", tags={"forecaster", "global", "many_series", "quantiles"})
class NBeatsForecaster(NetForecaster):
    Params = NBeatsParams
    shape_keys = ("blocks", "width", "layers")

    @staticmethod
    def network(meta: dict) -> NBeats:
        return NBeats(meta["lags"], meta["horizon"], meta["season"], meta["blocks"], meta["width"], meta["layers"],
                      covariates_of(meta), network_quantiles(meta))
