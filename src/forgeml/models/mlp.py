"""MLP for tables: standardized numerics and date parts + categorical embeddings + mean word embeddings of text columns."""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional

import torch
from pydantic import Field
from torch import nn

from forgeml.config.base import Strict
from forgeml.models import register_model


class MLPParams(Strict):
    """Tables: standardized numerics, categorical embeddings, bag-of-words text columns, then an MLP."""

    name: Literal["mlp"] = "mlp"
    hidden: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [256, 128])
    dropout: float = Field(0.1, ge=0, lt=1)
    embedding_dim: Optional[int] = Field(None, gt=0, description="categorical embedding size; default min(16, (levels+1)//2)")
    text_dim: int = Field(64, gt=0, description="embedding size for text columns (mean of word embeddings)")

    # forgeml tune's default space (config key -> range or choices); it holds the defaults, so the study measures them
    search_space: ClassVar[dict] = {
        "model.hidden": [[64], [128], [128, 64], [256, 128], [256, 256]],
        "model.dropout": {"low": 0.0, "high": 0.5},
        "train.lr": {"low": 1e-4, "high": 1e-2, "log": True},
        "train.weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
        "train.batch_size": [32, 64, 128],
    }


class TabularMLP(nn.Module):
    def __init__(self, shapes: dict, out_dim: int, hidden: list[int], dropout: float, embedding_dim, text_dim: int):
        super().__init__()
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, embedding_dim or min(16, (card + 1) // 2)) for card in shapes["categorical"]
        )
        self.text = nn.EmbeddingBag(shapes["text_vocab"], text_dim, mode="mean", padding_idx=0) if shapes["text_vocab"] else None
        self.n_datetime = int(shapes.get("datetime") or 0)  # standardized date parts, concatenated after the numerics
        width = shapes["numeric"] + self.n_datetime + sum(e.embedding_dim for e in self.embeddings) + (text_dim if self.text else 0)
        layers = []
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LayerNorm(h), nn.GELU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        if "numeric" in batch:
            parts.append(batch["numeric"])
        if self.n_datetime:
            parts.append(batch["datetime"])
        for j, emb in enumerate(self.embeddings):
            parts.append(emb(batch["categorical"][:, j]))
        if self.text is not None:
            parts.append(self.text(batch["tokens"]))
        return self.net(torch.cat(parts, dim=1))

    def input_layout(self) -> list[tuple[str, int | None, int]]:
        """What feeds the first Linear layer, in order: (model input key, its column or None for the whole input,
        width). forgeml.explain sums attributions taken there per raw column."""
        text_dim = self.text.embedding_dim if self.text is not None else 0
        numeric = self.net[0].in_features - self.n_datetime - sum(e.embedding_dim for e in self.embeddings) - text_dim
        return ([("numeric", j, 1) for j in range(numeric)] + [("datetime", j, 1) for j in range(self.n_datetime)]
                + [("categorical", j, e.embedding_dim) for j, e in enumerate(self.embeddings)]
                + ([("tokens", None, text_dim)] if text_dim else []))


def widths(params, model: TabularMLP) -> tuple[dict, dict]:
    """The hidden widths of a (pruned) network, and the input shapes it was built on."""
    linears = [m for m in model.net if isinstance(m, nn.Linear)]
    text_dim = model.text.embedding_dim if model.text is not None else 0
    return ({"hidden": [m.out_features for m in linears[:-1]]},
            {"numeric": linears[0].in_features - model.n_datetime - sum(e.embedding_dim for e in model.embeddings) - text_dim,
             "datetime": model.n_datetime,
             "categorical": [e.num_embeddings for e in model.embeddings],
             "text_vocab": model.text.num_embeddings if model.text is not None else 0})


@register_model("mlp", supports={"numeric", "categorical", "text", "datetime"}, params=MLPParams, tags={"prunable", "quantize:static", "quantize:dynamic", "distill"},
                widths=widths)
def build(params, shapes: dict, out_dim: int) -> nn.Module:
    return TabularMLP(shapes, out_dim, params.hidden, params.dropout, params.embedding_dim, params.text_dim)
