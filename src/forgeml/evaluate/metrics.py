"""Metrics from scikit-learn, as plain JSON-ready dicts."""
from __future__ import annotations

import warnings

import numpy as np


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, bins: int = 15) -> float:
    """Weighted gap between confidence and accuracy over equal-width confidence bins."""
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def classification_metrics(y: np.ndarray, proba: np.ndarray, labels: list, pred: np.ndarray | None = None) -> dict:
    """pred: the decided classes (default: the most probable; a tuned binary threshold decides otherwise)."""
    from sklearn import metrics as skm  # here, not at import: a server loads the task families without scikit-learn

    k = len(labels)
    pred = proba.argmax(axis=1) if pred is None else pred
    idx = list(range(k))
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=idx, zero_division=0)
    out = {
        "n": int(len(y)),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision_macro": float(p.mean()),
        "recall_macro": float(r.mean()),
        "f1_macro": float(f.mean()),
        "f1_weighted": float(skm.f1_score(y, pred, labels=idx, average="weighted", zero_division=0)),
        "log_loss": float(skm.log_loss(y, proba, labels=idx)),
        "ece": expected_calibration_error(y, proba),
        "roc_auc": None,
        "pr_auc": None,
    }
    present = np.unique(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if k == 2 and len(present) == 2:
            out["roc_auc"] = float(skm.roc_auc_score(y, proba[:, 1]))
            out["pr_auc"] = float(skm.average_precision_score(y, proba[:, 1]))
        elif k > 2 and len(present) == k:
            onehot = np.eye(k)[y]
            out["roc_auc"] = float(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
            out["pr_auc"] = float(skm.average_precision_score(onehot, proba, average="macro"))
    out["confusion_matrix"] = skm.confusion_matrix(y, pred, labels=idx).tolist()
    out["per_class"] = {
        str(lab): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, lab in enumerate(labels)
    }
    return out


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict:
    from sklearn import metrics as skm

    return {
        "n": int(len(y)),
        "mae": float(skm.mean_absolute_error(y, pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
        "r2": float(skm.r2_score(y, pred)),
    }


def score_text(value) -> str:
    """A score as runs print it: four decimals, or "n/a" when there is none."""
    return "n/a" if value is None else f"{value:.4f}"


SUMMARY_KEYS = {
    "classification": ["accuracy", "f1_macro", "roc_auc", "pr_auc", "log_loss", "ece"],
    "regression": ["mae", "rmse", "r2"],
}
