"""A small temporal transformer, global over every series: each point of the scaled window becomes a token (its value
beside its distance from the origin as a phase of the season, as the LSTM reads it, plus a learned position), a
pre-norm transformer encoder lets every point attend to every other, and a linear head turns the last token into the
correction of the window's seasonal naive forecast for every step (direct multi-step, not step by step).
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


class TransformerForecastParams(WindowNetParams):
    """A transformer encoder over lag windows of every series."""

    name: Literal["transformer"] = "transformer"
    d_model: int = Field(32, ge=4, description="token width")
    heads: int = Field(4, ge=1, description="attention heads (lowered to a divisor of d_model)")
    layers: int = Field(2, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)


class WindowTransformer(nn.Module):
    def __init__(self, lags: int, horizon: int, season: int, d_model: int, heads: int, layers: int, dropout: float,
                 covariates: Optional[Covariates] = None, quantiles: list[float] = (0.5,)):
        super().__init__()
        self.covariates = covariates  # adds its step-by-step correction
        self.embed = nn.Linear(3, d_model)
        self.pos = nn.Parameter(0.02 * torch.randn(lags, d_model))
        # torch.onnx's dynamo exporter traces the plain ops (attention, LayerNorm, ReLU), not the eval-mode fused
        # "fast path" (torch._transformer_encoder_layer_fwd) that eval forecasts under no_grad take; the two agree
        # with ReLU (not with a GELU(approximate="tanh"): the fused kernel computes the exact GELU, ~1.5e-4 apart)
        layer = nn.TransformerEncoderLayer(d_model, math.gcd(heads, d_model), 2 * d_model, dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        # the last token, not a mean pool: the forecast starts right after it, its residual stream carries the latest
        # value itself, and attention already gathers the rest of the window into it
        self.head = nn.Linear(d_model, horizon)
        # zero: an untrained network forecasts exactly seasonal naive (on AirPassengers, 8 epochs from a random head
        # scattered test MASE over 0.9-2.6 across seeds; from zero, 1.28-1.32)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("naive", seasonal_positions(lags, horizon, season), persistent=False)
        self.quantiles = QuantileHead(lags, horizon, list(quantiles))  # last: the layers above draw their init as before
        phase = 2 * math.pi * torch.arange(lags, dtype=torch.float32) / max(season, 1)
        self.register_buffer("phase", torch.stack([phase.sin(), phase.cos()], dim=1), persistent=False)

    def forward(self, batch: dict) -> torch.Tensor:
        x = batch["window"]
        steps = torch.cat([(x - 1).unsqueeze(-1), self.phase.expand(x.shape[0], -1, -1)], dim=-1)  # level 1 -> 0
        # x.shape[0], not len(x): len() makes torch.export fix the batch size
        out = self.encoder(self.embed(steps) + self.pos)
        forecast = x[:, self.naive] + self.head(out[:, -1])
        median = forecast if self.covariates is None else forecast + self.covariates(batch)
        return self.quantiles(x, median)


# opt_in: model auto leaves it out (another network to train in every run, and on AirPassengers its test MASE, 1.28,
# is behind the statistical models'); --model transformer trains it
@LEARNERS.register("transformer", tags={"forecaster", "global", "many_series", "opt_in", "quantiles"})
class TransformerForecaster(NetForecaster):
    Params = TransformerForecastParams
    shape_keys = ("d_model", "heads", "layers", "dropout")

    @staticmethod
    def network(meta: dict) -> WindowTransformer:
        return WindowTransformer(meta["lags"], meta["horizon"], meta["season"], meta["d_model"], meta["heads"],
                                 meta["layers"], meta["dropout"], covariates_of(meta),
                                 network_quantiles(meta))
