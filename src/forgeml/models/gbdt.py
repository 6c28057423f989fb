"""LightGBM gradient-boosted trees for tables, saved as LightGBM's own text model (no pickle)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

MODEL_FILE = "model.lightgbm.txt"


def feature_matrix(arrays: dict[str, np.ndarray]) -> np.ndarray:
    parts = [arrays[k].astype(np.float64) for k in ("numeric", "categorical") if k in arrays]
    return np.concatenate(parts, axis=1)


def _categorical_indices(arrays: dict[str, np.ndarray]) -> list[int]:
    n_num = arrays["numeric"].shape[1] if "numeric" in arrays else 0
    n_cat = arrays["categorical"].shape[1] if "categorical" in arrays else 0
    return list(range(n_num, n_num + n_cat))


def fit_matrix(params, task, x_train, y_train, x_val, y_val, seed: int, threads, categorical=(), sample_weight=None):
    """Boost on a dense or sparse matrix; the validation split picks the number of trees (early stopping)."""
    import lightgbm as lgb

    if task.name == "classification":
        k = task.out_dim
        objective = {"objective": "binary"} if k == 2 else {"objective": "multiclass", "num_class": k}
    else:
        objective = {"objective": "regression"}
    booster_params = {
        **objective, "learning_rate": params.learning_rate, "num_leaves": params.num_leaves,
        "min_child_samples": params.min_child_samples, "seed": seed, "verbose": -1, "num_threads": threads or 0,
    }
    cats = list(categorical) or "auto"
    train = lgb.Dataset(x_train, y_train, weight=sample_weight, categorical_feature=cats, free_raw_data=True)
    val = lgb.Dataset(x_val, y_val, reference=train, categorical_feature=cats)
    return lgb.train(booster_params, train, num_boost_round=params.n_estimators, valid_sets=[val],
                     callbacks=[lgb.early_stopping(30, verbose=False)])


def fit(params, task, train: dict, y_train: np.ndarray, val: dict, y_val: np.ndarray, seed: int, threads: int | None,
        sample_weight: np.ndarray | None = None):
    return fit_matrix(params, task, feature_matrix(train), y_train, feature_matrix(val), y_val, seed, threads,
                      _categorical_indices(train), sample_weight)


def raw_matrix_outputs(booster, x, task) -> np.ndarray:
    """Outputs in the same form the torch models give: logits (classification) or standardized values."""
    raw = booster.predict(x, raw_score=True, num_iteration=booster.best_iteration or None)
    if task.name == "classification":
        raw = raw.reshape(len(raw), -1)
        if raw.shape[1] == 1:  # binary: one margin -> two logits
            raw = np.concatenate([np.zeros_like(raw), raw], axis=1)
    return np.asarray(raw, dtype=np.float64)


def raw_outputs(booster, arrays: dict, task) -> np.ndarray:
    return raw_matrix_outputs(booster, feature_matrix(arrays), task)


def save(booster, run_dir: Path) -> None:
    from forgeml.artifacts import write_text

    write_text(run_dir / MODEL_FILE, booster.model_to_string(num_iteration=booster.best_iteration or None))


def load(run_dir: Path):
    import lightgbm as lgb

    return lgb.Booster(model_str=(run_dir / MODEL_FILE).read_text())
