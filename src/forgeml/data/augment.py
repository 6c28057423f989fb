"""Augmentation.

- ``batch_augmenter`` (data.augment): on-the-fly changes to training batches inside the loop, on the encoded
  tensors and on the batch's device: images (random crop, flip, rotation as one affine warp; brightness/contrast
  jitter), text token ids (random deletion, random swaps), tables (gaussian noise, mixup). Validation, test and
  predictions never see it. Random draws come from the loop's seeded generator, so a resumed run replays them.
- ``perturb`` / ``text_copies``: label-preserving copies of raw texts that enlarge the transfer set of distillation
  (Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT into Simple Neural Networks": the teacher labels
  perturbed copies of the training texts, so the student sees many more teacher judgements than there are rows).
"""
from __future__ import annotations

import math
from typing import Callable, Optional

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


# --------------------------------------------------------------------------------------------- training batches
# Augmentation roles: each feature type says what its model inputs are (FeatureType.augment_inputs); the caller
# passes them as ``inputs`` (model input key -> role), so nothing here knows a type or an input key by name.
PIXELS = "pixels"  # [N, C, H, W] normalized pixels: affine warp, brightness/contrast jitter
TOKEN_IDS = "token_ids"  # [N, L] token ids, 0 = padding: deletion and swaps of any real token
BRACKETED_TOKEN_IDS = "bracketed_token_ids"  # as token_ids, but the first and last real tokens ([CLS], [SEP]) stay
TOKEN_MASK = "token_mask"  # an attention mask, recomputed (ids != 0) from the token ids edited before it
CONTINUOUS = "continuous"  # [N, k] floats: gaussian noise, mixup


def batch_augmenter(cfg, inputs: dict[str, str]) -> Optional[Callable]:
    """A function (batch, generator) -> (batch, mix) for the training loop, or None when data.augment is all off.
    ``inputs``: model input key -> augmentation role, in input order (forgeml.features.augment_roles)."""
    im, tx, tb = cfg.image, cfg.text, cfg.table
    keys = lambda *roles: [k for k, role in inputs.items() if role in roles]  # noqa: E731
    pixels, continuous = keys(PIXELS), keys(CONTINUOUS)
    steps = []
    if im.crop or im.flip or im.rotate:
        steps.append(lambda b, g: _image_warp(b, g, pixels, im.crop, im.flip, im.rotate))
    if im.jitter:
        steps.append(lambda b, g: _image_jitter(b, g, pixels, im.jitter))
    if tx.delete or tx.swap:
        steps.append(lambda b, g: _text_edit(b, g, inputs, tx.delete, tx.swap))
    if tb.noise:
        steps.append(lambda b, g: _table_noise(b, g, continuous, tb.noise))
    if not steps and not tb.mixup:
        return None

    def augment(batch: dict, g):
        batch = dict(batch)
        for step in steps:
            step(batch, g)
        mixed = [k for k in continuous if k in batch]
        mix = _mixup(batch, g, mixed, tb.mixup) if tb.mixup and mixed else None
        return batch, mix

    return augment


def _uniform(g, n: int, low: float, high: float, device):
    import torch

    return (low + (high - low) * torch.rand(n, generator=g)).to(device)


def _image_warp(batch: dict, g, keys: list[str], crop: int, flip: bool, degrees: float) -> None:
    """Random translation by up to `crop` pixels (a padded random crop), horizontal flip and rotation, as one
    affine warp per image; uncovered borders repeat the edge pixels."""
    import torch
    import torch.nn.functional as F

    for key in (k for k in keys if k in batch):
        x = batch[key]
        n, _, h, w = x.shape
        angle = _uniform(g, n, -degrees, degrees, x.device) * (math.pi / 180)
        sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).to(x.device) if flip else torch.ones(n, device=x.device)
        tx, ty = (_uniform(g, n, -crop, crop, x.device).round() * 2 / size for size in (w, h))
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([torch.stack([cos * sign, -sin, tx], 1), torch.stack([sin * sign, cos, ty], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        batch[key] = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _image_jitter(batch: dict, g, keys: list[str], amount: float) -> None:
    """Brightness and contrast jitter on normalized pixels: x * (1 + c) + b, with c, b in [-amount, amount]."""
    for key in (k for k in keys if k in batch):
        x = batch[key]
        n = len(x)
        contrast = _uniform(g, n, 1 - amount, 1 + amount, x.device).view(n, 1, 1, 1)
        brightness = _uniform(g, n, -amount, amount, x.device).view(n, 1, 1, 1)
        batch[key] = x * contrast + brightness


def _text_edit(batch: dict, g, inputs: dict[str, str], p_delete: float, swaps: int) -> None:
    """Random token deletion (the rest moves left, padding fills the end) and random swaps of two tokens, on token
    ids (bracketed ones, MiniLM's, keep their first and last real tokens, [CLS] and [SEP]); an attention mask is
    recomputed from the ids edited before it."""
    edited = None
    for key, role in inputs.items():
        if key not in batch:
            continue
        if role in (TOKEN_IDS, BRACKETED_TOKEN_IDS):
            batch[key] = edited = _edit_ids(batch[key], g, role == BRACKETED_TOKEN_IDS, p_delete, swaps)
        elif role == TOKEN_MASK and edited is not None:
            batch[key] = (edited != 0).to(batch[key].dtype)


def _edit_ids(ids, g, bracketed: bool, p_delete: float, swaps: int):
    import torch

    ids = ids.clone()
    n, length = ids.shape
    real = ids != 0
    pos = torch.arange(length, device=ids.device).expand(n, length)
    lengths = real.sum(1, keepdim=True)
    protected = (pos == 0) | (pos == lengths - 1) if bracketed else torch.zeros_like(real)
    editable = real & ~protected
    if p_delete:
        drop = editable & (torch.rand(n, length, generator=g).to(ids.device) < p_delete)
        drop &= (editable & ~drop).any(1, keepdim=True) | ~editable.any(1, keepdim=True)  # never empty a text
        keep = real & ~drop
        order = torch.where(keep, pos, pos + length).argsort(dim=1)  # kept tokens first, in their order
        ids = torch.where(keep.gather(1, order), ids.gather(1, order), torch.zeros_like(ids))
        lengths = (ids != 0).sum(1, keepdim=True)
    first = 1 if bracketed else 0
    span = (lengths.squeeze(1) - first - (1 if bracketed else 0)).clamp(min=0)
    rows = torch.arange(n, device=ids.device)
    for _ in range(swaps):
        i = first + (torch.rand(n, generator=g).to(ids.device) * span).long()
        j = first + (torch.rand(n, generator=g).to(ids.device) * span).long()
        ok = span >= 2
        a, b = ids[rows, i].clone(), ids[rows, j].clone()
        ids[rows[ok], i[ok]], ids[rows[ok], j[ok]] = b[ok], a[ok]
    return ids


def _table_noise(batch: dict, g, keys: list[str], sigma: float) -> None:
    import torch

    for key in (k for k in keys if k in batch):
        x = batch[key]
        batch[key] = x + sigma * torch.randn(x.shape, generator=g).to(x.device, x.dtype)


def _mixup(batch: dict, g, keys: list[str], alpha: float):
    """Mixup (Zhang et al. 2018) of the continuous inputs (one draw for all); the others (categorical codes, ...)
    stay those of the first row of each pair."""
    import torch

    lam = float(np.random.default_rng(int(torch.randint(2**31 - 1, (1,), generator=g))).beta(alpha, alpha))
    perm = torch.randperm(len(batch[keys[0]]), generator=g).to(batch[keys[0]].device)
    for key in keys:
        batch[key] = lam * batch[key] + (1 - lam) * batch[key][perm]
    return perm, lam
