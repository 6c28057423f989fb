"""PNG plots a person wants to look at: learning curves, confusion matrix, ROC and PR curves, residuals."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, dpi: int = 110, tight_bbox: bool = False) -> Path:
    """Write the figure as a PNG atomically and close it (``tight_bbox`` crops to the drawn area instead of laying out)."""
    import io

    from forgeml.artifacts import atomic_write_bytes

    buf = io.BytesIO()
    if tight_bbox:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    else:
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=dpi)
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def learning_curves(history: list[dict], monitor: str, path: Path, best_epoch: int | None = None) -> Path:
    plt = pyplot()
    epochs = [h["epoch"] + 1 for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].plot(epochs, [h["train_loss"] for h in history], label="train loss")
    axes[0].plot(epochs, [h["val_loss"] for h in history], label="validation loss")
    axes[0].set_xlabel("epoch"), axes[0].set_title("loss"), axes[0].legend()
    key = monitor if monitor != "val_loss" else next((k for k in ("val_accuracy", "val_rmse") if k in history[0]), "val_loss")
    axes[1].plot(epochs, [h[key] for h in history], color="tab:green")
    axes[1].set_xlabel("epoch"), axes[1].set_title(key.replace("_", " "))
    for ax in axes:
        ax.grid(alpha=0.3)
        if best_epoch is not None:
            ax.axvline(best_epoch + 1, color="grey", ls=":", lw=1)
    if best_epoch is not None:
        axes[0].text(best_epoch + 1, axes[0].get_ylim()[1], " kept", va="top", color="grey", fontsize=8)
    return save_figure(fig, path)


def confusion(cm: list[list[int]], labels: list, path: Path) -> Path:
    plt = pyplot()
    cm = np.asarray(cm)
    k = len(labels)
    fig, ax = plt.subplots(figsize=(min(max(4.5, 2 + 0.6 * k), 12), min(max(4.0, 1.6 + 0.6 * k), 11)))
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(k), [str(x) for x in labels], rotation=45 if k > 6 else 0)
    ax.set_yticks(range(k), [str(x) for x in labels])
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title("confusion matrix (test)\ncolour: share of the true class", fontsize=10)
    return save_figure(fig, path)


def roc_pr(y: np.ndarray, proba: np.ndarray, labels: list, path_roc: Path, path_pr: Path) -> list[Path]:
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    plt = pyplot()
    classes = [1] if len(labels) == 2 else range(len(labels))
    fig_r, ax_r = plt.subplots(figsize=(5, 4.5))
    fig_p, ax_p = plt.subplots(figsize=(5, 4.5))
    for c in classes:
        pos = (y == c).astype(int)
        if pos.min() == pos.max():
            continue
        fpr, tpr, _ = roc_curve(pos, proba[:, c])
        prec, rec, _ = precision_recall_curve(pos, proba[:, c])
        name = str(labels[c])
        ax_r.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(pos, proba[:, c]):.3f})")
        ax_p.plot(rec, prec, label=f"{name} (AP {average_precision_score(pos, proba[:, c]):.3f})")
    ax_r.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax_r.set_xlabel("false positive rate"), ax_r.set_ylabel("true positive rate"), ax_r.set_title("ROC (test)")
    ax_p.set_xlabel("recall"), ax_p.set_ylabel("precision"), ax_p.set_title("precision-recall (test)")
    for ax in (ax_r, ax_p):
        ax.legend(fontsize=7, loc="lower right" if ax is ax_r else "lower left"), ax.grid(alpha=0.3)
    return [save_figure(fig_r, path_roc), save_figure(fig_p, path_pr)]


def regression_fit(y: np.ndarray, pred: np.ndarray, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].scatter(y, pred, s=8, alpha=0.6)
    lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    axes[0].plot([lo, hi], [lo, hi], "k--", lw=0.8)
    axes[0].set_xlabel("actual"), axes[0].set_ylabel("predicted"), axes[0].set_title("predicted vs actual (test)")
    axes[1].hist(pred - y, bins=30, color="tab:orange")
    axes[1].set_xlabel("residual (predicted - actual)"), axes[1].set_title("residuals (test)")
    return save_figure(fig, path)


def compression(result: dict, path: Path) -> Path:
    """Test metric against batch-1 latency for each variant; the marker's area is proportional to the size on disk."""
    plt = pyplot()
    metric = "test_" + result["metric"]
    variants = result["variants"]
    sizes = np.array([v["size_bytes"] for v in variants], dtype=float)
    area = 60 + 900 * sizes / sizes.max()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for v, a in zip(variants, area):
        ax.scatter(v["latency_ms_p50"], v[metric], s=a, alpha=0.55)
        ax.annotate(f"{v['variant']}\n{v['size_bytes'] / 1e6:.2f} MB", (v["latency_ms_p50"], v[metric]),
                    textcoords="offset points", xytext=(8, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("latency at batch 1, p50 (ms, log scale)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"compression of {result['run']}: {result['metric']} vs latency (marker area = model size)")
    ax.grid(alpha=0.3, which="both")
    ax.margins(x=0.25, y=0.15)
    return save_figure(fig, path)


def cross_validation(per_fold: list[dict], keys: list[str], path: Path) -> Path:
    """Each test metric per fold (model and baseline), with the mean as a line: how much a score moves between folds."""
    plt = pyplot()
    keys = [k for k in keys if k not in ("log_loss", "ece")][:4] or keys[:1]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys) + 0.6, 3.4), squeeze=False)
    folds = [f["fold"] for f in per_fold]
    for ax, key in zip(axes[0], keys):
        for which, label, color in (("test", "model", "tab:blue"), ("baseline_test", "baseline", "tab:gray")):
            values = [f[which][key] for f in per_fold]
            ax.plot(folds, values, "o", color=color, label=f"{label} (mean {np.mean(values):.3f})")
            ax.axhline(np.mean(values), color=color, lw=1, ls="--")
        ax.set_xticks(folds), ax.set_xlabel("fold"), ax.set_title(key.replace("_", " "))
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def anomaly_scores(score: np.ndarray, y, threshold, path: Path) -> Path:
    """Test scores as histograms, by label when there are labels, with the threshold as a line."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    bins = np.histogram_bin_edges(score, bins=40)
    if y is not None and len(np.unique(y)) == 2:
        ax.hist(score[y == 0], bins=bins, alpha=0.6, label=f"normal ({int((y == 0).sum())})", color="tab:blue", density=True)
        ax.hist(score[y == 1], bins=bins, alpha=0.6, label=f"anomaly ({int((y == 1).sum())})", color="tab:red", density=True)
    else:
        ax.hist(score, bins=bins, alpha=0.7, color="tab:blue", label=f"all rows ({len(score)})")
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.4g}")
    ax.set_xlabel("anomaly score (higher = more anomalous)"), ax.set_ylabel("density"), ax.set_title("scores (test)")
    ax.legend(fontsize=8), ax.grid(alpha=0.3)
    return save_figure(fig, path)


def precision_recall(y: np.ndarray, score: np.ndarray, path: Path) -> Path:
    """Precision-recall curve of a score against binary labels (test)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    plt = pyplot()
    prec, rec, _ = precision_recall_curve(y, score)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(rec, prec, label=f"AP {average_precision_score(y, score):.3f}")
    ax.axhline(float(np.mean(y)), color="grey", ls=":", lw=1, label=f"chance ({np.mean(y):.3f})")
    ax.set_xlabel("recall"), ax.set_ylabel("precision"), ax.set_title("precision-recall (test)")
    ax.legend(fontsize=8), ax.grid(alpha=0.3)
    return save_figure(fig, path)
