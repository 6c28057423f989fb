"""Class imbalance (data.balance): resampling the training split, class-weighted or focal loss, and a decision
threshold tuned on validation for binary tasks.

Resampling uses imbalanced-learn (or, for ``generative``, a conditional VAE: forgeml.data.generative_balance) on the
encoded training inputs (after preprocessing was fitted), and only ever
touches the training split: validation and test keep the real class balance, so their metrics stay honest. SMOTE
treats each model input as its feature type declares (``FeatureType.smote``, passed in as ``roles``: input key ->
"continuous", "nominal" or None): continuous inputs are interpolated, nominal ones are codes (SMOTENC), and an input
with no role (images, token ids) cannot be synthesized.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from forgeml.errors import ConfigError, DataError

SMOTE_ROLES = ("continuous", "nominal")


def check(cfg, task, roles: dict[str, str | None]) -> None:
    """Reject settings that cannot apply, before anything is trained (``roles``: model input key -> SMOTE role)."""
    if cfg.method == "none" and cfg.threshold == "none":
        return
    if "labels" not in task.tags:
        raise ConfigError(f"data.balance is for classification; this is a {task.name} task (leave data.balance out)")
    if cfg.threshold != "none" and task.out_dim != 2:
        raise ConfigError(f"data.balance.threshold is for binary tasks; this one has {task.out_dim} classes")
    others = sorted(k for k, role in roles.items() if role not in SMOTE_ROLES)
    if cfg.method in ("smote", "generative") and others:
        what = "interpolates" if cfg.method == "smote" else "generates"
        raise ConfigError(f"data.balance.method {cfg.method} {what} table features; this data has {', '.join(others)} "
                          "inputs: use oversample, undersample, class_weights or focal")


RESAMPLING = ("oversample", "undersample", "smote", "generative")


def resample(arrays: dict[str, np.ndarray], y: np.ndarray, cfg, labels: list, roles: dict[str, str | None],
             say=lambda m: None) -> tuple[dict, np.ndarray, Optional[np.ndarray], dict]:
    """The training inputs after oversample/undersample/smote/generative, the row index taken from the original
    split (None for SMOTE and generative, whose new rows are synthetic), and what the method reports about itself.
    ``roles``: model input key -> SMOTE role, in input order."""
    if cfg.method not in RESAMPLING:
        return arrays, y, None, {}
    if cfg.method == "generative":
        from forgeml.data.generative_balance import oversample

        out, y_new, report = oversample(arrays, y, cfg, labels, roles, say)
        return out, y_new, None, report
    from imblearn.over_sampling import SMOTE, SMOTENC, RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    if cfg.method in ("oversample", "undersample"):
        sampler = (RandomOverSampler if cfg.method == "oversample" else RandomUnderSampler)(random_state=cfg.seed)
        index, y_new = sampler.fit_resample(np.arange(len(y)).reshape(-1, 1), y)
        index = index.ravel()
        return {k: v[index] for k, v in arrays.items()}, y_new, index, {}

    counts = np.bincount(y, minlength=len(labels))
    present = counts[counts > 0]
    if present.min() <= cfg.k_neighbors:
        smallest = int(np.flatnonzero(counts == present.min())[0])
        raise DataError(
            f"SMOTE with k_neighbors={cfg.k_neighbors} needs at least {cfg.k_neighbors + 1} training rows of every class; "
            f"class {labels[smallest]!r} has {present.min()}. Lower data.balance.k_neighbors to {max(1, present.min() - 1)}, "
            "or use oversample or class_weights")
    # continuous inputs first, then nominal ones, each in input order: one float matrix, its nominal columns last
    keys = [k for role in SMOTE_ROLES for k, r in roles.items() if r == role and k in arrays]
    x = np.concatenate([arrays[k].astype(np.float64) for k in keys], axis=1)
    edges = np.cumsum([0] + [arrays[k].shape[1] for k in keys])
    nominal = [j for k, lo, hi in zip(keys, edges, edges[1:]) if roles[k] == "nominal" for j in range(lo, hi)]
    if nominal:
        sampler = SMOTENC(categorical_features=nominal, k_neighbors=cfg.k_neighbors, random_state=cfg.seed)
    else:
        sampler = SMOTE(k_neighbors=cfg.k_neighbors, random_state=cfg.seed)
    x_new, y_new = sampler.fit_resample(x, y)
    out = {}
    for k, lo, hi in zip(keys, edges, edges[1:]):
        block = x_new[:, lo:hi]
        out[k] = (np.rint(block) if roles[k] == "nominal" else block).astype(arrays[k].dtype)
    return out, np.asarray(y_new, dtype=np.int64), None, {}


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse class frequency, scaled so the average row weight is 1 (scikit-learn's 'balanced')."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)


def training_loss(cfg, y: np.ndarray, n_classes: int) -> Optional[Callable]:
    """The training loss data.balance asks for (None: the task's own cross-entropy)."""
    if cfg.method not in ("class_weights", "focal"):
        return None
    import torch
    import torch.nn.functional as F

    weight = torch.tensor(class_weights(y, n_classes), dtype=torch.float32)
    if cfg.method == "class_weights":
        return lambda out, target: F.cross_entropy(out.float(), target, weight=weight.to(out.device))
    gamma, balanced = cfg.focal_gamma, cfg.focal_balanced

    def focal(out, target):  # Lin et al. 2017: down-weights the easy, well-classified rows
        logp = F.log_softmax(out.float(), dim=1).gather(1, target[:, None]).squeeze(1)
        loss = -(1 - logp.exp()) ** gamma * logp
        if balanced:  # weighted mean, as cross_entropy(weight=...) takes it
            w = weight.to(out.device)[target]
            return (w * loss).sum() / w.sum()
        return loss.mean()

    return focal


def tune_threshold(y: np.ndarray, p_positive: np.ndarray, how: str, target_recall: float) -> dict:
    """The decision threshold on P(positive) chosen on validation: best F1, or the highest threshold whose recall of
    the positive class reaches target_recall."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, p_positive)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    if how == "f1":
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        i = int(np.argmax(f1))
    else:
        reaching = np.flatnonzero(recall >= target_recall)
        i = int(reaching[-1]) if len(reaching) else 0
    return {"threshold": float(thresholds[i]), "tuned_for": how if how == "f1" else f"recall>={target_recall:g}",
            "how": how, "target_recall": target_recall,
            "val_precision": float(precision[i]), "val_recall": float(recall[i])}
