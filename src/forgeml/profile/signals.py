"""The target side of the profile: class balance, each feature's association with the target (mutual information)
and single-feature leakage scores."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pandas as pd

from forgeml.features import tags_of
from forgeml.tasks import infer_task, task_tags
from forgeml.profile.rules import IMBALANCE_MAX_RATIO, IMBALANCE_MIN_SHARE, MI_BINS, MI_LEVELS
from forgeml.profile.stats import numeric_stats, display, jsonable, pct, warning  # noqa: F401


# ------------------------------------------------------------------------------------------------ target
def class_counts(y: pd.Series) -> pd.Series:
    """Rows per class, keyed as training keys labels (schema.category_keys: 1, 1.0 and '1' are one class), largest first."""
    from forgeml.data.schema import canonical

    counts = y.value_counts(dropna=True)  # vectorized; only the distinct values go through canonical()
    keys = [str(canonical(v)) for v in counts.index]
    return counts.groupby(keys, sort=False).sum().sort_values(ascending=False, kind="stable")


def encode_target(y: pd.Series, task: str) -> np.ndarray:
    """The target as training encodes it (forgeml.tasks ... encode), computed per distinct value for classification."""
    from forgeml.tasks import fit_task

    fitted = fit_task(task, y)
    if "labels" not in task_tags(task):
        return fitted.encode(y)
    from forgeml.data.schema import canonical

    index = {str(v): i for i, v in enumerate(fitted.labels)}
    inverse, uniques = pd.factorize(y)
    return np.asarray([index[str(canonical(u))] for u in uniques], dtype=np.int64)[inverse]


def target_summary(y: pd.Series, target: str, n: int) -> tuple[dict, Optional[str]]:
    warns: list[dict] = []
    if y.empty:
        warns.append(warning("target_empty", target, f"target {target!r} is entirely missing: nothing to learn from"))
        return {"_warnings": warns}, None
    task = infer_task(y)
    if "labels" not in task_tags(task):
        return {"_warnings": warns, "stats": numeric_stats(y)}, task
    counts = class_counts(y)
    total = int(counts.sum())
    classes = [{"label": str(k), "count": int(c), "pct": pct(c, total)} for k, c in counts.head(30).items()]
    summary = {"_warnings": warns, "classes": classes, "classes_total": int(len(counts)), "imbalanced": False}
    if len(counts) < 2:
        warns.append(warning("single_class", target, f"target {target!r} has a single class ({classes[0]['label']!r}): "
                                                   "classification needs at least two"))
        return summary, task
    k = len(counts)
    major, minor = counts.index[0], counts.index[-1]
    ratio = float(counts.iloc[0] / counts.iloc[-1])
    share = float(counts.iloc[-1] / total)
    share_limit = min(IMBALANCE_MIN_SHARE, 0.5 / k)
    imbalanced = share < share_limit or ratio > IMBALANCE_MAX_RATIO
    summary.update({"majority": str(major), "minority": str(minor), "ratio": ratio, "minority_share": share,
                    "share_limit": share_limit, "imbalanced": imbalanced})
    if imbalanced:
        warns.append(warning("imbalance", target,
                           f"class imbalance in {target!r}: majority {str(major)!r} {int(counts.iloc[0]):,} rows "
                           f"({pct(counts.iloc[0], total):.1f}%) vs minority {str(minor)!r} {int(counts.iloc[-1]):,} rows "
                           f"({share:.1%}), ratio {ratio:.1f}:1. Accuracy is misleading here (always predicting "
                           f"{str(major)!r} scores {counts.iloc[0] / total:.1%}): judge models by ROC AUC, PR AUC and per-class "
                           "recall (the training report shows them), and consider class weights or resampling"))
    return summary, task


# ------------------------------------------------------------------------------------------------ association
def _codes(col: pd.Series, ordered: bool) -> tuple[np.ndarray, int]:
    """Integer codes for mutual information: quantile bins for ordered values (numbers), else the top levels; missing
    is a level."""
    if ordered:
        x = col.to_numpy(dtype=np.float64, na_value=np.nan)
        nan = ~np.isfinite(x)
        values = x[~nan]
        if values.size == 0:
            return np.zeros(len(x), dtype=np.int64), 1
        uniq = np.unique(values)
        if uniq.size <= MI_BINS:
            codes = np.searchsorted(uniq, np.where(nan, uniq[0], x))
            k = uniq.size
        else:
            edges = np.unique(np.quantile(values, np.linspace(0, 1, MI_BINS + 1)[1:-1]))
            codes = np.searchsorted(edges, np.where(nan, values[0], x), side="right")
            k = edges.size + 1
        codes = np.where(nan, k, codes)
        return codes.astype(np.int64), k + 1
    counts = col.value_counts(dropna=True)
    top = counts.index[:MI_LEVELS]
    codes = pd.Index(top).get_indexer(col).astype(np.int64)  # -1: another level, or missing
    k = len(top)
    codes = np.where(codes >= 0, codes, np.where(col.isna().to_numpy(), k + 1, k))  # k: other levels, k+1: missing
    return codes, k + 2


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def mutual_information(cx: np.ndarray, kx: int, cy: np.ndarray, ky: int) -> float:
    """Plug-in mutual information (nats) of two code arrays with the Miller-Madow bias correction, floored at 0."""
    joint = np.bincount(cx * ky + cy, minlength=kx * ky).reshape(kx, ky).astype(np.float64)
    total = joint.sum()
    px, py = joint.sum(1) / total, joint.sum(0) / total
    mi = _entropy(px) + _entropy(py) - _entropy(joint.ravel() / total)
    mi -= ((px > 0).sum() - 1) * ((py > 0).sum() - 1) / (2 * total)
    return max(0.0, mi)


def association(df, hashable, by_name, cols, rows, y_enc, task) -> dict:
    if "labels" in task_tags(task):
        cy, ky = y_enc.astype(np.int64), int(y_enc.max()) + 1
    else:
        cy, ky = _codes(pd.Series(y_enc), ordered=True)
    hy = _entropy(np.bincount(cy, minlength=ky) / len(cy))
    out = []
    for name in cols:
        kind = by_name[name]["type"]
        cx, kx = _codes(hashable[name].iloc[rows].reset_index(drop=True), "ordered" in tags_of(kind))
        mi = mutual_information(cx, kx, cy, ky)
        out.append({"feature": name, "type": kind, "mi_bits": mi / math.log(2), "mi_share": mi / hy if hy > 0 else 0.0})
    return {"rows": int(len(rows)), "method": "binned mutual information", "target_entropy_bits": hy / math.log(2),
            "features": out}


# ------------------------------------------------------------------------------------------------ leakage: one feature
def single_feature_scores(df, hashable, by_name, cols, rows, y_enc, task, seed) -> dict:
    """Each feature alone: a depth-6 tree (an ``ordered`` type: numbers) or a per-level lookup (other types), fitted on
    70% of a sample and scored on the other 30% (balanced accuracy for classification, R^2 for regression); the same
    check training runs on its training split (forgeml.features.exclusions)."""
    from forgeml.features.exclusions import single_feature_scores as scores

    return scores({c: hashable[c] for c in cols}, {c: by_name[c]["type"] for c in cols}, rows, y_enc,
                  "labels" in task_tags(task), seed)
