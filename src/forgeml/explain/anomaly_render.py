"""Anomaly explanations as things to look at: the mean share per feature (PNG), an image grid with each row's
heat-map of pixel shares (PNG), the terminal summary (Rich) and the report's "Explanations" section."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from forgeml.evaluate.html import img, table
from forgeml.evaluate.plots import pyplot, save_figure
from forgeml.explain.anomaly import NAMES


def mean_share_plot(means: dict, title: str, path: Path, top: int = 20) -> Path:
    plt = pyplot()
    items = list(means.items())[:top][::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(items) + 1.2))
    ax.barh([k for k, _ in items], [v for _, v in items], color=["tab:green" if v >= 0 else "tab:red" for _, v in items])
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_xlabel("mean share of the anomaly score (a row's absolute shares add up to 1)")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path, dpi=110, tight_bbox=True)


def image_grid(images01: np.ndarray, heats: list[np.ndarray], titles: list[str], method: str, path: Path,
               per_row: int = 3, most: int = 12) -> Path:
    """Each explained image [C, H, W] in [0, 1] beside its heat-map of shares (green: raises the score, red: lowers
    it, as in the per-row bar charts)."""
    from matplotlib.colors import LinearSegmentedColormap

    plt = pyplot()
    cmap = LinearSegmentedColormap.from_list("red_white_green", ["tab:red", "white", "tab:green"])
    n = min(len(heats), most)
    rows = -(-n // per_row)
    fig, axes = plt.subplots(rows, 2 * per_row, figsize=(2.6 * per_row, 1.5 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    for k in range(rows * per_row):
        left, right = axes[k // per_row, 2 * (k % per_row)], axes[k // per_row, 2 * (k % per_row) + 1]
        if k >= n:
            left.axis("off"), right.axis("off")
            continue
        image = images01[k]
        left.imshow(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=1)
        left.set_title(titles[k].replace(": ", ":\n", 1), fontsize=6)
        scale = float(np.abs(heats[k]).max()) or 1.0
        right.imshow(heats[k], cmap=cmap, vmin=-scale, vmax=scale)
        right.set_title("share per pixel", fontsize=6)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.text(0.5, 0.01, f"{method}: green pixels raise the anomaly score, red ones lower it", ha="center", fontsize=7)
    return save_figure(fig, path, dpi=110, tight_bbox=True)


def _top(rec: dict, n: int) -> str:
    if "attributions" in rec:
        pairs = sorted(rec["attributions"].items(), key=lambda kv: -abs(kv[1]))[:n]
        return ", ".join(f"{k} {v:.3f}" for k, v in pairs)
    r, c = rec["peak"]
    return f"peak pixel ({r}, {c}): {rec['heatmap'][r][c]:.3f}"


def renderables(result: dict, top: int = 3) -> list:
    from rich.table import Table

    out = [f"explained [bold]{result['run']}[/] ({result['model']}) on {result['data']}: "
           + ", ".join(NAMES[m] for m in result["methods"])]
    for method in result["methods"]:
        info = result["shares"][method]
        recs = [r for r in result["instances"] if r["method"] == method]
        t = Table(title=f"{NAMES[method]}: each column's share of the row's anomaly score (top {top})")
        for col, justify in (("row", "left"), ("score", "right"), ("anomaly", "left"), ("largest shares", "left")):
            t.add_column(col, justify=justify)
        for r in recs:
            row = r["heading"].split(":")[0] + (f" (true {r['true']})" if r.get("true") is not None else "")
            t.add_row(row, f"{r['score']:.4g}", "yes" if r["is_anomaly"] else "no", _top(r, top))
        out.append(t)
        out.append(f"measured against {info['reference']}")
        means = list(info["mean_shares"].items())[:5]
        if means:
            out.append(f"mean share over the {info['rows']} rows: " + ", ".join(f"{k} {v:.3f}" for k, v in means))
    out.append(f"wrote {len(result['files'])} files to {result['out']}: {', '.join(result['files'][:8])}"
               + (" ..." if len(result["files"]) > 8 else ""))
    return out


def report_section(result: dict, folder: Path) -> list[str]:
    e = html.escape
    parts = ["<h2>Explanations</h2>",
             f"<p class=note>{e(', '.join(NAMES[m] for m in result['methods']))} on {e(result['data'])} "
             f"({e(result['created'])}). Each value is a column's {e(result['units'])}. "
             f"Files: {e(', '.join(folder.name + '/' + f for f in result['files']))}.</p>"]
    for method in result["methods"]:
        info = result["shares"][method]
        recs = [r for r in result["instances"] if r["method"] == method]
        parts.append(f"<h3>{e(NAMES[method])}</h3><p class=note>Measured against {e(info['reference'])}.</p>")
        parts.append(table(["row", "score", "anomaly", "largest shares"],
                           [[r["heading"].split(":")[0], r["score"], "yes" if r["is_anomaly"] else "no", _top(r, 5)]
                            for r in recs]))
        if info["mean_shares"]:
            parts.append(table(["feature", f"mean share ({info['rows']} rows)"],
                               [[k, v] for k, v in list(info["mean_shares"].items())[:20]]))
    pngs = [f for f in result["files"] if f.endswith(".png")]
    parts += [img(folder / f) for f in pngs[:12] if (folder / f).is_file()]
    return parts
