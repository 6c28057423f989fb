"""The global LightGBM forecaster as parts of one ONNX graph (forgeml export; forgeml.tasks.forecast_onnx_lgbm):

    history [N, T] ─► the scaled window, the value a season back, the window's mean/std, log1p(level), the step k
    calendar [N, H, C], known [N, H, K], past [N, P], static [N, S] ─┘─► feature rows [N * H, F] ─► the trees

The torch module computes the rows exactly as ``forecast_lgbm._rows`` does at forecast time; the trees are converted by
forgeml's LightGBM converter (forgeml.models.gbdt.onnx_core). What the values alone do not give (the calendar of the
future times, the covariates, the static codes) are inputs of the graph, computed by ``feeds`` as predict reads them.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from forgeml.models.forecast_nets import history_level


class LagFeatures(nn.Module):
    """(history [N, T], {input name: tensor}) -> (feature rows [N * H, F], window-major as _rows; level [N, 1])."""

    def __init__(self, meta: dict, horizon: int):
        super().__init__()
        season = max(int(meta["season"]), 1)
        self.lags = int(meta["lags"])
        self.tail = min(max(season, 2), self.lags)  # the points the window's mean and std read
        # _season_back: the value `back` points before origin + k, i.e. back - k points before the history's last
        before = [(season * math.ceil(k / season) if season > 1 else k) - k for k in range(1, horizon + 1)]
        self.reach = max(before) + 1
        self.pad = max(self.lags, self.reach)  # the front padding (the first value) stands for _gather's clipping at 0
        self.register_buffer("pick", torch.tensor([self.reach - 1 - b for b in before], dtype=torch.long))
        self.register_buffer("steps", torch.arange(1, horizon + 1, dtype=torch.float32))
        self.known, self.past, self.static = bool(meta["known"]), bool(meta["past"]), bool(meta["static"])

    def forward(self, history: torch.Tensor, given: dict):
        full = torch.cat([history[:, :1].expand(-1, self.pad), history], dim=1)
        level = history_level(history, self.lags)
        x = full[:, -self.lags:] / level
        tail = x[:, -self.tail:]
        mean = tail.mean(dim=1, keepdim=True)
        std = ((tail - mean) ** 2).mean(dim=1, keepdim=True).sqrt()  # numpy's std: ddof 0
        summary = torch.cat([mean, std, torch.log1p(level)], dim=1)
        seasonal = full[:, -self.reach:].index_select(1, self.pick) / level  # [N, H]
        h = self.steps.shape[0]
        cols = [x[:, None, :].expand(-1, h, -1), seasonal[:, :, None], summary[:, None, :].expand(-1, h, -1),
                (torch.ones_like(seasonal) * self.steps)[:, :, None], given["calendar"]]
        if self.known:
            cols.append(given["known"])
        if self.past:
            cols.append(given["past"][:, None, :].expand(-1, h, -1))
        if self.static:
            cols.append(given["static"][:, None, :].expand(-1, h, -1))
        rows = torch.cat(cols, dim=2)
        return rows.reshape(-1, rows.shape[2]), level


class GraphFeatures:
    """What forgeml export needs of a fitted LightGBM forecaster (Forecaster.graph_features)."""

    def __init__(self, booster, meta: dict, horizon: int):
        from forgeml.features.series import calendar_columns
        from forgeml.models.forecast_covariates import input_specs

        self.booster, self.meta, self.horizon = booster, meta, horizon
        h, freq = horizon, meta["freq"]
        self.inputs = [{"name": "calendar", "dtype": "float32", "shape": ["series", h, len(calendar_columns(freq))],
                        "columns": calendar_columns(freq),
                        "how": f"the calendar of each of the next {h} times (the {freq} steps after the history's "
                               "last), as forgeml.features.series.calendar(times, freq) gives it"}]
        self.inputs += input_specs(meta, h)
        self.width = int(meta["lags"]) + 5 + sum(i["shape"][-1] for i in self.inputs)

    @property
    def names(self) -> list[str]:
        return [i["name"] for i in self.inputs]

    def module(self) -> nn.Module:
        return LagFeatures(self.meta, self.horizon).eval()

    def core(self, opset: int):
        """The trees as an ONNX model: input ``features`` [rows, F] float32, output [rows, 1]."""
        from forgeml.models.gbdt import onnx_core

        if self.booster.num_feature() != self.width:
            raise ValueError(f"the booster reads {self.booster.num_feature()} features; the graph makes {self.width}")
        return onnx_core(self.booster, self.width, opset)

    def feeds(self, contexts) -> dict[str, np.ndarray]:
        from forgeml.models.forecast_lgbm import graph_inputs

        return graph_inputs(self.meta, contexts, self.horizon)
