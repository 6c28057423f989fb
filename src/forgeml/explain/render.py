"""Explanations as files a person can look at: heat-maps over images (PNG grids drawn with Captum's visualization),
highlighted tokens (self-contained HTML), importance bar plots (PNG) and tables (CSV)."""
from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Optional

import numpy as np

from forgeml import artifacts
from forgeml.evaluate.html import img, table
from forgeml.evaluate.plots import pyplot, save_figure

TITLES = {"gradcam": "Grad-CAM", "ig": "Integrated Gradients", "lime": "LIME"}
# Grad-CAM is non-negative (ReLU'd): a jet overlay on the image. IG is signed and per pixel: its own map, green for
# the explained class, red against it (Captum's red-white-green), beside the input.
STYLE = {"gradcam": {"method": "blended_heat_map", "sign": "positive", "cmap": "jet", "alpha_overlay": 0.55},
         "ig": {"method": "heat_map", "sign": "all"}}


def _show_image(ax, image01: np.ndarray) -> None:
    """[C, H, W] in [0, 1]."""
    ax.imshow(image01[0] if image01.shape[0] == 1 else image01.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([]), ax.set_yticks([])


def _show_heat(fig, ax, heat: np.ndarray, image01: np.ndarray, method: str) -> None:
    from captum.attr import visualization as viz

    if not np.abs(heat).max() > 0:  # nothing to show (all zero): the image alone
        _show_image(ax, image01)
    else:
        viz.visualize_image_attr(heat[:, :, None], image01.transpose(1, 2, 0), plt_fig_axis=(fig, ax), use_pyplot=False,
                                 outlier_perc=1, **STYLE[method])
    ax.set_xticks([]), ax.set_yticks([])


def image_grid(images01: np.ndarray, heats: dict[str, np.ndarray], titles: list[str], rows: list[list[int]],
               row_labels: list[str], path: Path) -> Path:
    """One row per class: each example as [input | one heat-map per method]."""
    plt = pyplot()
    methods = list(heats)
    per_row = max(len(r) for r in rows)
    cols = per_row * (1 + len(methods))
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.35 * cols, 1.45 * len(rows) + 0.4), squeeze=False)
    for r, members in enumerate(rows):
        for c in range(per_row):
            cells = axes[r, c * (1 + len(methods)):(c + 1) * (1 + len(methods))]
            if c >= len(members):
                for ax in cells:
                    ax.axis("off")
                continue
            i = members[c]
            _show_image(cells[0], images01[i])
            cells[0].set_title(titles[i], fontsize=7)
            for ax, m in zip(cells[1:], methods):
                _show_heat(fig, ax, heats[m][i], images01[i], m)
                if r == 0:
                    ax.set_title(TITLES[m], fontsize=7)
        axes[r, 0].set_ylabel(row_labels[r], fontsize=8)
    caption = {"gradcam": "Grad-CAM: where the last convolutional stage found evidence for the predicted class (red: most)",
               "ig": "Integrated Gradients: per pixel, green for the predicted class, red against it"}
    fig.tight_layout(rect=(0, 0.025, 1, 1))
    fig.text(0.5, 0.01, ".   ".join(caption[m] for m in methods), ha="center", va="bottom", fontsize=8)
    return save_figure(fig, path, dpi=100, tight_bbox=True)


def image_panels(image01: np.ndarray, heats: dict[str, np.ndarray], title: str, path: Path) -> Path:
    """One input: [input | one heat-map per method], larger."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 1 + len(heats), figsize=(2.6 * (1 + len(heats)), 2.9), squeeze=False)
    _show_image(axes[0, 0], image01)
    axes[0, 0].set_title(title, fontsize=9)
    for ax, (m, heat) in zip(axes[0, 1:], heats.items()):
        _show_heat(fig, ax, heat, image01, m)
        ax.set_title(TITLES[m], fontsize=9)
    return save_figure(fig, path, dpi=110, tight_bbox=True)


# --------------------------------------------------------------------------------------------- text
def _token_span(token: str, value: float, scale: float) -> str:
    """A token on a green (for) / red (against) background; opacity from |value| on a scale shared by all texts."""
    a = min(1.0, abs(value) / scale) if scale > 0 else 0.0
    colour = f"rgba(0,160,60,{a:.2f})" if value >= 0 else f"rgba(220,40,40,{a:.2f})"
    glue = token.startswith("##")
    text = html.escape(token[2:] if glue else token)
    space = "" if glue else " "
    return f'{space}<span class=tok style="background:{colour}" title="{value:+.4f}">{text}</span>'


def text_fragment(items: list[dict]) -> str:
    """Each text with its tokens highlighted (green: for the explained class, red: against)."""
    parts = []
    scale = max((abs(v) for it in items for v in it["attributions"]), default=0.0)
    for it in items:
        vals = it["attributions"]
        spans = "".join(_token_span(t, v, scale) for t, v in zip(it["tokens"], vals))
        head = html.escape(it["heading"])
        parts.append(f"<div class=ex><div class=head>{head}</div><div class=txt>{spans or '<i>(empty)</i>'}</div></div>")
    return "".join(parts)


TEXT_CSS = (".ex{margin:.8em 0;padding:.5em .8em;border:1px solid #ddd;border-radius:6px}.head{color:#555;font-size:.9em;"
            "margin-bottom:.3em}.txt{line-height:1.9}.tok{padding:1px 2px;border-radius:3px}")


def text_html(items: list[dict], title: str, note: str) -> str:
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title><style>"
            f"body{{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;padding:0 1em}}{TEXT_CSS}</style></head>"
            f"<body><h1>{html.escape(title)}</h1><p>{html.escape(note)}</p>{text_fragment(items)}</body></html>")


# --------------------------------------------------------------------------------------------- tables
def importance_plot(perm: dict, path: Path, top: int = 20) -> Path:
    plt = pyplot()
    feats = perm["features"][:top][::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(feats) + 1.2))
    ax.barh([f["feature"] for f in feats], [f["importance"] for f in feats], xerr=[f["std"] for f in feats],
            color="tab:blue", alpha=0.85, capsize=3)
    ax.axvline(0, color="black", linewidth=0.6)
    change = "rise" if not perm["higher_is_better"] else "drop"
    ax.set_xlabel(f"{change} in test {perm['metric']} when the column is shuffled (mean ± sd, {perm['repeats']} shuffles)")
    ax.set_title(f"permutation importance ({perm['rows']} rows, {perm['metric']} = {perm['score']:.4f})")
    return save_figure(fig, path, dpi=110, tight_bbox=True)


def rows_plot(records: list[dict], units: str, path: Path, top: int = 8) -> Path:
    """Per-row attributions: one small bar chart per row (green pushes toward the explained output, red away)."""
    plt = pyplot()
    n = len(records)
    cols = min(3, n)
    nrows = -(-n // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.3 * cols, 0.32 * top * nrows + 1.0 * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        rec = records[k]
        items = sorted(rec["attributions"].items(), key=lambda kv: abs(kv[1]), reverse=True)[:top][::-1]
        ax.barh([name for name, _ in items], [v for _, v in items],
                color=["tab:green" if v >= 0 else "tab:red" for _, v in items])
        ax.axvline(0, color="black", linewidth=0.6)
        ax.tick_params(labelsize=7)
        ax.set_title(rec["heading"].replace(": ", ":\n", 1), fontsize=8)
    fig.supxlabel(units, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110, tight_bbox=True)


def write_csv(rows: list[dict], columns: list[str], path: Path) -> Path:
    import pandas as pd

    buf = io.StringIO()
    pd.DataFrame(rows, columns=columns).to_csv(buf, index=False)
    artifacts.write_text(path, buf.getvalue())
    return path


def heading(rec: dict, index, truth: Optional[str] = None) -> str:
    """'row 12: predicted Yes (p=0.83), true No' / 'row 3: predicted 41.2'."""
    where = f"row {index}" if not isinstance(index, str) else index
    if "probability" in rec:
        explained = "" if rec["explained"] == rec["prediction"] else f"; explaining {rec['explained']} (p={rec['probability']:.2f})"
        p = rec["probabilities"][str(rec["prediction"])]
        text = f"{where}: predicted {rec['prediction']} (p={p:.2f}){explained}"
    else:
        text = f"{where}: predicted {rec['prediction']:.4g}"
    return text + (f", true {truth}" if truth is not None else "")


# --------------------------------------------------------------------------------------------- the run's report
def report_section(result: dict, folder: Path) -> list[str]:
    """The "Explanations" section of report.html, from explanations.json and the files beside it."""
    if "shares" in result:  # each column's share of anomaly scores (explain/anomaly.py)
        from forgeml.explain.anomaly_render import report_section as anomaly_section

        return anomaly_section(result, folder)
    from forgeml.explain.methods import COLUMNS, NAMES, TOKENS

    e = html.escape
    parts = ["<h2>Explanations</h2>",
             f"<p class=note>{e(', '.join(NAMES[m] for m in result['methods']))} on {e(result['data'])} ({e(result['created'])}). "
             f"Attributions are contributions to the {e(result['units'])}; baseline: {e(result['baseline'])}. "
             f"Files: {e(', '.join(folder.name + '/' + f for f in result['files']))}.</p>"]
    perm = result.get("permutation")
    if perm:
        change = "drop" if perm["higher_is_better"] else "rise"
        parts.append(f"<h3>Permutation importance</h3><p class=note>{change} in test {e(perm['metric'])} (score "
                     f"{perm['score']:.4f} on {perm['rows']} rows) when one column is shuffled; mean and sd over "
                     f"{perm['repeats']} shuffles.</p>")
        parts.append(table(["rank", "feature", "importance", "sd"],
                            [[f["rank"], f["feature"], f["importance"], f["std"]] for f in perm["features"][:20]]))
    instances = result.get("instances", [])
    kind = result["kind"]  # forgeml.explain.methods.kind_of
    if instances and kind == COLUMNS:
        parts.append("<h3>Per-row attributions</h3>")
        rows = []
        for rec in instances:
            top = sorted(rec["attributions"].items(), key=lambda kv: -abs(kv[1]))[:5]
            rows.append([rec["heading"].split(" [")[0], NAMES[rec["method"]], ", ".join(f"{k} {v:+.4f}" for k, v in top)])
        parts.append(table(["row", "method", "largest contributions"], rows))
    if instances and kind == TOKENS:
        for method in result["methods"]:
            recs = [r for r in instances if r["method"] == method]
            parts.append(f"<h3>{e(NAMES[method])}: tokens</h3><style>{TEXT_CSS}</style>{text_fragment(recs)}")
    pngs = [f for f in result["files"] if f.endswith(".png")]
    parts += [img(folder / f) for f in pngs[:12] if (folder / f).is_file()]
    return parts
