"""Small networks for private training: ``linear`` (logistic or linear regression) and ``shallow_mlp`` (one tanh
hidden layer), on every input but text: numerics and date parts as they are, each categorical column one-hot (an
embedding whose rows are the one-hot weights), images flattened.

Under DP-SGD the noise added to each step grows with the number of parameters while the signal does not, so small
models on good fixed features keep their accuracy where a CNN loses it (Tramèr & Boneh, ICLR 2021). They are what
``model: auto`` trains under ``train.privacy`` (forgeml.models.resolve_auto), tagged ``dp_default``; they train
without privacy too."""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from forgeml.config.base import Strict
from forgeml.models import register_model

ACCEPTS = {"numeric", "categorical", "datetime", "image"}


class LinearParams(Strict):
    """One linear layer from every input to the outputs (softmax/logistic regression for classes)."""

    name: Literal["linear"] = "linear"


class ShallowMLPParams(Strict):
    """One hidden layer with tanh (bounded activations suit DP-SGD's clipping), then the outputs."""

    name: Literal["shallow_mlp"] = "shallow_mlp"
    hidden: int = Field(64, gt=0, description="width of the hidden layer")


class Shallow(nn.Module):
    """inputs -> [Linear -> tanh] -> Linear. The first layer's categorical part is one embedding per column, which is a
    linear layer on that column's one-hot code."""

    def __init__(self, shapes: dict, out_dim: int, hidden: int | None):
        super().__init__()
        image = shapes.get("image")
        self.dense_keys = [k for k, width in (("numeric", shapes.get("numeric")), ("datetime", shapes.get("datetime")))
                           if width]
        width = sum(int(shapes[k]) for k in self.dense_keys) + (int(torch.tensor(image).prod()) if image else 0)
        self.has_image = bool(image)
        first = hidden or out_dim
        self.dense = nn.Linear(width, first) if width else None
        self.categorical = nn.ModuleList(nn.Embedding(card, first) for card in shapes.get("categorical") or [])
        self.head = nn.Sequential(nn.Tanh(), nn.Linear(hidden, out_dim)) if hidden else None

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        dense = [batch[k] for k in self.dense_keys]
        if self.has_image:
            dense.append(batch["image"].flatten(1))
        out = self.dense(torch.cat(dense, dim=1)) if self.dense is not None else 0  # else the embeddings hold the bias
        for j, emb in enumerate(self.categorical):
            out = out + emb(batch["categorical"][:, j])
        return self.head(out) if self.head is not None else out


@register_model("linear", supports=ACCEPTS, params=LinearParams, tags={"dp_default"})
def build_linear(params: LinearParams, shapes: dict, out_dim: int) -> nn.Module:
    return Shallow(shapes, out_dim, None)


@register_model("shallow_mlp", supports=ACCEPTS, params=ShallowMLPParams, tags={"dp_candidate"})
def build_shallow_mlp(params: ShallowMLPParams, shapes: dict, out_dim: int) -> nn.Module:
    return Shallow(shapes, out_dim, params.hidden)
