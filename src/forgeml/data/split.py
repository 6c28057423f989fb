"""Seeded train/validation/test split, stratified for classification."""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.model_selection import train_test_split


def split_indices(y: np.ndarray, classification: bool, cfg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = np.arange(len(y))
    strat = y if (classification and cfg.stratify) else None
    if strat is not None and np.bincount(y).min(initial=len(y)) < 3:
        warnings.warn("a class has fewer than 3 rows: splitting without stratification")
        strat = None
    try:
        rest, test = train_test_split(idx, test_size=cfg.test, random_state=cfg.seed, stratify=strat)
        train, val = train_test_split(rest, test_size=cfg.val / (1 - cfg.test), random_state=cfg.seed,
                                      stratify=None if strat is None else y[rest])
    except ValueError:  # more classes than rows in a split: stratification is impossible
        if strat is None:
            raise
        warnings.warn("too few rows per class to stratify the split: splitting without stratification")
        rest, test = train_test_split(idx, test_size=cfg.test, random_state=cfg.seed)
        train, val = train_test_split(rest, test_size=cfg.val / (1 - cfg.test), random_state=cfg.seed)
    return np.sort(train), np.sort(val), np.sort(test)
