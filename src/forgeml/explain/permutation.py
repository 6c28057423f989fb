"""Global permutation importance: how much the run's test score drops when one raw column's values are shuffled
across rows (breaking its link to the target while keeping its distribution). Model-agnostic: it only calls the
model's own prediction (LoadedModel.raw) on DataFrames, so torch models and LightGBM are treated alike.

The score is the run's primary metric (ROC-AUC for two classes, accuracy for more, RMSE for regression); importance
is the drop (for RMSE: the rise), mean and standard deviation over `repeats` shuffles.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import pandas as pd

from forgeml.errors import DataError

MAX_ROWS = 5000  # more test rows than this: a seeded sample of them (each shuffle re-predicts every row)


def scorer(task) -> tuple[str, Callable[[np.ndarray, np.ndarray], float], bool]:
    """(metric name, score(y, raw outputs), higher is better)."""
    if "labels" in task.tags:
        if len(task.labels) == 2:
            from sklearn.metrics import roc_auc_score

            return "roc_auc", lambda y, raw: float(roc_auc_score(y, task.outputs(raw)["proba"][:, 1])), True
        return "accuracy", lambda y, raw: float((task.outputs(raw)["pred"] == y).mean()), True

    def rmse(y, raw):
        err = task.decode(task.outputs(raw)["pred"]) - task.decode(y)
        return float(np.sqrt(np.mean(err ** 2)))

    return "rmse", rmse, False


def labelled(model, frame: pd.DataFrame, where: str) -> tuple[pd.DataFrame, np.ndarray]:
    target = model.manifest["target"]["name"]
    if target not in frame.columns:
        raise DataError(f"permutation importance needs labelled rows: {where} has no target column {target!r} "
                        "(leave out --input to use the run's own test split)")
    frame = frame[frame[target].notna()].reset_index(drop=True)
    y = model.task.encode(frame[target])
    if "labels" in model.task.tags and len(np.unique(y)) < 2 and len(model.task.labels) == 2:
        raise DataError(f"permutation importance with ROC-AUC needs both classes in the rows; {where} has one")
    return frame, y


def permutation_importance(model, frame: pd.DataFrame, y: np.ndarray, repeats: int = 5, seed: int = 0,
                           advance: Optional[Callable[[], None]] = None) -> dict:
    """Importance per raw feature column, sorted most important first."""
    if len(frame) > MAX_ROWS:
        keep = np.sort(np.random.default_rng(seed).permutation(len(frame))[:MAX_ROWS])
        frame, y = frame.iloc[keep].reset_index(drop=True), y[keep]
    metric, score, higher = scorer(model.task)
    base = score(y, model.raw(frame))
    rng = np.random.default_rng(seed)
    rows = []
    for name in model.features:
        drops = []
        for _ in range(repeats):
            shuffled = frame.copy()
            shuffled[name] = frame[name].to_numpy()[rng.permutation(len(frame))]
            s = score(y, model.raw(shuffled))
            drops.append(base - s if higher else s - base)
            if advance:
                advance()
        rows.append({"feature": name, "importance": float(np.mean(drops)), "std": float(np.std(drops)),
                     "drops": [round(float(d), 6) for d in drops]})
    rows.sort(key=lambda r: r["importance"], reverse=True)
    for rank, r in enumerate(rows, 1):
        r["rank"] = rank
    return {"metric": metric, "higher_is_better": higher, "score": base, "rows": len(frame), "repeats": repeats,
            "seed": seed, "features": rows}
