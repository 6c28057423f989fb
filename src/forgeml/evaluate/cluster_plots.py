"""Clustering plots: how k was chosen (inertia and silhouette against k), and the test rows in two dimensions
coloured by cluster (beside their labels when a label column evaluates the run)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from forgeml.evaluate.plots import pyplot, save_figure


def k_selection(sweep: list[dict], chosen: int, path: Path) -> Path:
    """The elbow (inertia on the training rows) and the silhouette that chose k, one point per k tried."""
    plt = pyplot()
    ks = [s["k"] for s in sweep]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot(ks, [s["inertia"] for s in sweep], "o-", color="tab:blue", label="inertia (train)")
    ax.set_xlabel("k (clusters)"), ax.set_ylabel("inertia", color="tab:blue")
    other = ax.twinx()
    other.plot(ks, [np.nan if s["silhouette"] is None else s["silhouette"] for s in sweep], "s--", color="tab:orange",
               label="silhouette (train + val)")
    other.set_ylabel("silhouette", color="tab:orange")
    ax.axvline(chosen, color="black", ls=":", lw=1)
    ax.set_title(f"choosing k: the best silhouette is at k = {chosen}")
    ax.set_xticks(ks)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def projection(x: np.ndarray, cluster: np.ndarray, label: Optional[np.ndarray], path: Path) -> Path:
    """The test rows on their first two principal components, coloured by cluster (and, beside, by label)."""
    from sklearn.decomposition import PCA

    plt = pyplot()
    n_components = min(2, x.shape[1], len(x))
    xy = PCA(n_components=n_components, random_state=0).fit_transform(x) if len(x) > 1 else np.zeros((len(x), 2))
    if xy.shape[1] == 1:
        xy = np.column_stack([xy[:, 0], np.zeros(len(xy))])
    panels = [("clusters", cluster)] + ([("labels (evaluation only)", label)] if label is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, (title, values) in zip(axes[0], panels):
        keys, codes = np.unique(np.asarray(values).astype(str), return_inverse=True)
        points = ax.scatter(xy[:, 0], xy[:, 1], c=codes, cmap="tab10" if len(keys) <= 10 else "tab20", s=12, alpha=0.8)
        if len(keys) <= 12:
            handles = points.legend_elements()[0]
            ax.legend(handles, list(keys), fontsize=7, title=title.split(" ")[0], title_fontsize=8, loc="best")
        ax.set_title(f"test rows by {title}", fontsize=10)
        ax.set_xlabel("PC 1"), ax.set_ylabel("PC 2"), ax.grid(alpha=0.3)
    return save_figure(fig, path)
