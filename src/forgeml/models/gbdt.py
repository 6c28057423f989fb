"""LightGBM gradient-boosted trees for tables, saved as LightGBM's own text model (no pickle)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

MODEL_FILE = "model.lightgbm.txt"


def _matrix(arrays: dict[str, np.ndarray]) -> np.ndarray:
    parts = [arrays[k].astype(np.float64) for k in ("numeric", "categorical") if k in arrays]
    return np.concatenate(parts, axis=1)


def _categorical_indices(arrays: dict[str, np.ndarray]) -> list[int]:
    n_num = arrays["numeric"].shape[1] if "numeric" in arrays else 0
    n_cat = arrays["categorical"].shape[1] if "categorical" in arrays else 0
    return list(range(n_num, n_num + n_cat))


def fit(params, task, train: dict, y_train: np.ndarray, val: dict, y_val: np.ndarray, seed: int, threads: int | None):
    import lightgbm as lgb

    common = dict(
        n_estimators=params.n_estimators, learning_rate=params.learning_rate, num_leaves=params.num_leaves,
        min_child_samples=params.min_child_samples, random_state=seed, verbose=-1, n_jobs=threads or -1,
    )
    model = lgb.LGBMClassifier(**common) if task.name == "classification" else lgb.LGBMRegressor(**common)
    cats = _categorical_indices(train)
    model.fit(
        _matrix(train), y_train, eval_set=[(_matrix(val), y_val)], categorical_feature=cats or "auto",
        callbacks=[lgb.early_stopping(30, verbose=False)],
    )
    return model.booster_


def raw_outputs(booster, arrays: dict, task) -> np.ndarray:
    """Outputs in the same form the torch models give: logits (classification) or standardized values."""
    raw = booster.predict(_matrix(arrays), raw_score=True)
    if task.name == "classification":
        raw = raw.reshape(len(raw), -1)
        if raw.shape[1] == 1:  # binary: one margin -> two logits
            raw = np.concatenate([np.zeros_like(raw), raw], axis=1)
    return np.asarray(raw, dtype=np.float64)


def save(booster, run_dir: Path) -> None:
    from forgeml.artifacts import write_text

    write_text(run_dir / MODEL_FILE, booster.model_to_string())


def load(run_dir: Path):
    import lightgbm as lgb

    return lgb.Booster(model_str=(run_dir / MODEL_FILE).read_text())
