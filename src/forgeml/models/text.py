"""Text trained from scratch: word embeddings + BiLSTM (mean and max pooled) or a small transformer encoder."""
from __future__ import annotations

import math

import torch
from torch import nn

from forgeml.models import register_model


class TextEncoderClassifier(nn.Module):
    def __init__(self, vocab: int, out_dim: int, encoder: str, embedding_dim: int, hidden: int, layers: int, heads: int, dropout: float, max_len: int = 4096):
        super().__init__()
        self.encoder_kind = encoder
        self.embed = nn.Embedding(vocab, embedding_dim, padding_idx=0)
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
        ids = batch["tokens"]
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


@register_model("text", supports={"text"})
def build(params, shapes: dict, out_dim: int) -> nn.Module:
    return TextEncoderClassifier(shapes["text_vocab"], out_dim, params.encoder, params.embedding_dim, params.hidden,
                                 params.layers, params.heads, params.dropout)
