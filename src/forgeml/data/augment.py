"""Label-preserving text augmentation: random word deletion, adjacent swaps and n-gram sampling.

Used to enlarge the transfer set of distillation (Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT
into Simple Neural Networks": the teacher labels perturbed copies of the training texts, so the student sees many
more teacher judgements than there are labelled rows).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def perturb(text: str, rng: np.random.Generator, p_delete: float = 0.1, p_swap: float = 0.1, p_ngram: float = 0.25) -> str:
    words = text.split()
    if len(words) < 2:
        return text
    if rng.random() < p_ngram and len(words) > 4:  # keep one contiguous window of at least half the words
        n = int(rng.integers(len(words) // 2, len(words)))
        start = int(rng.integers(0, len(words) - n + 1))
        words = words[start : start + n]
    kept = [w for w in words if rng.random() >= p_delete] or words[:1]
    for i in range(len(kept) - 1):
        if rng.random() < p_swap:
            kept[i], kept[i + 1] = kept[i + 1], kept[i]
    return " ".join(kept)


def text_copies(df: pd.DataFrame, text_columns: list[str], copies: int, seed: int = 0) -> pd.DataFrame:
    """``copies`` perturbed versions of every row (text columns changed, the rest kept), in row order per copy."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(copies):
        frame = df.copy()
        for c in text_columns:
            frame[c] = [perturb(t, rng) if isinstance(t, str) else t for t in df[c]]
        out.append(frame)
    return pd.concat(out, ignore_index=True)
