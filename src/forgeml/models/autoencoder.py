"""Autoencoder anomaly detector: an MLP squeezes each row through a bottleneck and rebuilds it; rows it rebuilds badly
are anomalous. Its output is the score itself (higher = more anomalous), so it exports to ONNX as any torch network.

Inputs are flattened to one float vector per row (``FlatInputs``: standardized numerics, one-hot categoricals with
code 0 -> all zeros, flattened images), the same columns as ``forgeml.models.detectors.detector_matrix``.
"""
from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from forgeml.config.base import Strict
from forgeml.models import register_model


class AutoencoderParams(Strict):
    """MLP autoencoder: hidden sizes of the encoder (the last is the bottleneck); the decoder mirrors it."""

    name: Literal["autoencoder"] = "autoencoder"
    hidden: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [64, 16], min_length=1)
    dropout: float = Field(0.0, ge=0, lt=1)


class FlatInputs(nn.Module):
    """batch dict -> float [N, D]: numerics, one-hot categoricals (levels + 1 codes per column in ``shapes``; code c
    -> column c - 1 of its block, 0 -> all zeros), flattened images (C, H, W order). Plain ops (Equal, Cast, Concat),
    so it exports to ONNX. ``columns`` maps each original input column to its slice of D (for explanations)."""

    def __init__(self, shapes: dict):
        super().__init__()
        self.n_numeric = int(shapes.get("numeric") or 0)
        self.cards = [int(c) for c in shapes.get("categorical") or []]
        image = shapes.get("image")
        self.image = [int(s) for s in image] if image else None
        for j, card in enumerate(self.cards):
            self.register_buffer(f"levels_{j}", torch.arange(1, card, dtype=torch.int64), persistent=False)
        blocks = [1] * self.n_numeric + [c - 1 for c in self.cards]
        self.n_pixels = self.image[1] * self.image[2] if self.image else 0
        self.width = sum(blocks) + (self.image[0] * self.n_pixels if self.image else 0)
        if self.width == 0:
            raise ValueError("the detector needs numeric, categorical or image inputs")
        self.blocks = blocks  # widths of the table columns, in order; image columns follow

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        if self.n_numeric:
            parts.append(batch["numeric"].float())
        for j in range(len(self.cards)):
            codes = batch["categorical"][:, j : j + 1]
            parts.append((codes == getattr(self, f"levels_{j}")).float())
        if self.image:
            parts.append(batch["image"].float().flatten(1))
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def per_column(self, errors: torch.Tensor) -> torch.Tensor:
        """[N, D] per-feature values -> [N, n_input_columns]: one per numeric column, the sum over each categorical
        column's one-hot block, and one per image pixel (H * W, row-major) summed over channels."""
        n = errors.shape[0]
        table = sum(self.blocks)
        parts = []
        if self.n_numeric:
            parts.append(errors[:, : self.n_numeric])
        start = self.n_numeric
        for card in self.cards:
            parts.append(errors[:, start : start + card - 1].sum(dim=1, keepdim=True))
            start += card - 1
        if self.image:
            parts.append(errors[:, table:].reshape(n, self.image[0], self.n_pixels).sum(dim=1))
        return torch.cat(parts, dim=1)


def mlp(sizes: list[int], dropout: float, bias: bool = True, last_activation: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(sizes)):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2 or last_activation:
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    """forward(batch) -> per-row anomaly score [N] (mean squared reconstruction error over the D input features)."""

    def __init__(self, shapes: dict, hidden: list[int], dropout: float):
        super().__init__()
        self.inputs = FlatInputs(shapes)
        d = self.inputs.width
        self.encoder = mlp([d, *hidden], dropout, last_activation=True)
        self.decoder = mlp([*reversed(hidden), d], dropout)

    def squared_errors(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[N, D]: (x - reconstruction) ** 2 per input feature."""
        x = self.inputs(batch)
        return (self.decoder(self.encoder(x)) - x) ** 2

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.squared_errors(batch).mean(dim=1)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The mean over rows of the per-row score: what training minimizes."""
        return self.forward(batch).mean()

    def feature_errors(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[N, n_input_columns] squared errors per original column (see FlatInputs.per_column); their row sum divided
        by ``self.inputs.width`` is the score."""
        return self.inputs.per_column(self.squared_errors(batch))

    def score_parts(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[N, n_input_columns]: each original column's part of the score, ``feature_errors / D``; a row's parts add
        up to ``forward(batch)``. What the ``reconstruction`` tag promises (forgeml.explain.anomaly reads it)."""
        return self.feature_errors(batch) / self.inputs.width


# tag "reconstruction": the network has score_parts(batch) -> [N, columns] in FlatInputs.per_column's layout
@register_model("autoencoder", supports={"numeric", "categorical", "image"}, params=AutoencoderParams, tags={"detector", "reconstruction"})
def build(params, shapes: dict, out_dim=None) -> nn.Module:
    return Autoencoder(shapes, list(params.hidden), params.dropout)
