"""Render a data profile (forgeml.profile.analyze): a Rich summary for the terminal and a self-contained HTML report
whose plots are embedded PNGs (same look as the training report)."""
from __future__ import annotations

import html
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from forgeml.profile.rules import TOP_FEATURES
from forgeml.evaluate.plots import pyplot, save_figure
from forgeml.evaluate.html import css, img, table

MAX_NUMERIC_PLOTS = 12
MAX_MISSING_BARS = 40
MAX_CLASS_BARS = 30
FLAG_TEXT = {"empty": "entirely missing", "constant": "constant", "id_like": "ID-like", "high_cardinality": "high cardinality",
             "many_missing": "mostly missing", "infinite": "infinite values", "target": "target"}


def default_report_path(source: str) -> Path:
    """``<data stem>.profile.html`` in the current folder (bundled:NAME gives NAME.profile.html)."""
    import re

    name = source.split(":", 1)[1] if source.startswith("bundled:") else Path(source.rstrip("/")).stem
    return Path(f"{re.sub(r'[^A-Za-z0-9_.-]', '-', name) or 'data'}.profile.html")


@contextmanager
def progress(quiet: bool = False) -> Iterator:
    """A ``step(message)`` callable showing what runs now on stderr: a spinner on a terminal, plain lines otherwise."""
    if quiet:
        yield lambda msg: None
        return
    import time

    from rich.console import Console

    console = Console(stderr=True)
    tic = time.perf_counter()
    if not console.is_terminal:
        yield lambda msg: console.print(f"[dim]profile {time.perf_counter() - tic:6.1f} s: {msg}[/]", highlight=False,
                                        soft_wrap=True)
        return
    with console.status("profiling") as status:
        yield lambda msg: status.update(f"profiling: {msg} [dim]({time.perf_counter() - tic:.1f} s)[/]")


# ------------------------------------------------------------------------------------------------ plots
def make_plots(result: dict, folder: Path) -> dict[str, list[Path]]:
    """PNG files for the report, by section."""
    plots: dict[str, list[Path]] = {"missing": [], "numeric": [], "target": [], "association": []}
    cols = result["column_info"]
    if any(c["missing"] for c in cols):
        plots["missing"].append(_missing_plot(cols, folder / "missing.png"))
    for i, c in enumerate(numeric_to_plot(cols)):
        plots["numeric"].append(_numeric_plot(c, folder / f"numeric_{i:02d}.png"))
    ts = result.get("target_summary")
    if ts and ts.get("classes"):
        plots["target"].append(_class_plot(result, folder / "target.png"))
    elif ts and ts.get("stats") and ts["stats"].get("hist"):
        plots["target"].append(_numeric_plot({"name": result["target"], "stats": ts["stats"]}, folder / "target.png",
                                             title=f"target {result['target']!r}"))
    if result.get("association") and result["association"]["features"]:
        plots["association"].append(_association_plot(result, folder / "association.png"))
    return plots


def numeric_to_plot(cols: list[dict]) -> list[dict]:
    """At most 12 numeric columns: the largest outlier shares first, then in column order."""
    numeric = [c for c in cols if c["stats"] and c["stats"].get("hist") and c["role"] == "feature" and "constant" not in c["flags"]]
    numeric.sort(key=lambda c: -(c["stats"]["outliers_pct"] or 0))
    return numeric[:MAX_NUMERIC_PLOTS]


def _missing_plot(cols: list[dict], path: Path) -> Path:
    plt = pyplot()
    shown = sorted((c for c in cols if c["missing"]), key=lambda c: -c["missing_pct"])[:MAX_MISSING_BARS]
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.28 * len(shown)))
    names = [c["name"] for c in shown][::-1]
    values = [c["missing_pct"] for c in shown][::-1]
    bars = ax.barh(names, values, color="tab:red", alpha=0.7)
    for bar, c in zip(bars, shown[::-1]):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {c['missing']:,}", va="center", fontsize=8)
    ax.set_xlim(0, max(100.0 if max(values) > 50 else max(values) * 1.25, 1e-9))
    ax.set_xlabel("missing values (% of rows; label: count)")
    ax.set_title("missing values per column" + (f" (the {len(shown)} most affected)" if len(shown) == MAX_MISSING_BARS else ""))
    ax.grid(alpha=0.3, axis="x")
    return save_figure(fig, path)


def _numeric_plot(col: dict, path: Path, title: Optional[str] = None) -> Path:
    plt = pyplot()
    s = col["stats"]
    fig, (ax_h, ax_b) = plt.subplots(1, 2, figsize=(10, 2.6), gridspec_kw={"width_ratios": [3, 2]})
    edges, counts = s["hist"]["edges"], s["hist"]["counts"]
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    ax_h.bar(edges[:-1], counts, width=widths or 1.0, align="edge", color="tab:blue", alpha=0.75)
    ax_h.set_title(title or f"{col['name']}: histogram ({s['count']:,} values)", fontsize=10)
    stats = dict(s["box"], label="")
    import matplotlib

    new_api = tuple(map(int, matplotlib.__version__.split(".")[:2])) >= (3, 10)
    horizontal = {"orientation": "horizontal"} if new_api else {"vert": False}
    ax_b.bxp([stats], showfliers=True, widths=0.5, flierprops={"markersize": 3, "alpha": 0.5}, **horizontal)
    if s["outliers"] is None:
        sub = "IQR = 0: outlier rule not applied"
    else:
        sub = f"{s['outliers']:,} outliers ({s['outliers_pct']:.2f}%) outside Q1-1.5·IQR, Q3+1.5·IQR"
    ax_b.set_title(sub, fontsize=9)
    ax_b.set_yticks([])
    for ax in (ax_h, ax_b):
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _class_plot(result: dict, path: Path) -> Path:
    plt = pyplot()
    ts = result["target_summary"]
    classes = ts["classes"][:MAX_CLASS_BARS]
    fig, ax = plt.subplots(figsize=(min(max(4.5, 1.5 + 0.45 * len(classes)), 12), 3.6))
    color = "tab:red" if ts.get("imbalanced") else "tab:blue"
    bars = ax.bar([c["label"] for c in classes], [c["count"] for c in classes], color=color, alpha=0.75)
    for bar, c in zip(bars, classes):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{c['pct']:.1f}%", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("rows")
    note = f" (imbalanced, {ts['ratio']:.1f}:1)" if ts.get("imbalanced") else ""
    ax.set_title(f"class balance of {result['target']!r}{note}", fontsize=10)
    if len(classes) > 6:
        ax.tick_params(axis="x", rotation=45)
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


def _association_plot(result: dict, path: Path) -> Path:
    plt = pyplot()
    feats = result["association"]["features"][:TOP_FEATURES]
    suspects = {s["feature"] for s in result["leakage"]["single_feature"]["scores"] if s.get("suspect")}
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.32 * len(feats)))
    names = [f["feature"] for f in feats][::-1]
    values = [f["mi_share"] for f in feats][::-1]
    colors = ["tab:red" if n in suspects else "tab:green" for n in names]
    ax.barh(names, values, color=colors, alpha=0.8)
    ax.set_xlim(0, max(1.0, max(values) * 1.05) if values else 1.0)
    ax.set_xlabel("mutual information / entropy of the target (1 = determines the target; red: leakage suspect)")
    ax.set_title(f"features most associated with {result['target']!r} ({_rows(result['association'])})", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    return save_figure(fig, path)


# ------------------------------------------------------------------------------------------------ HTML
def render(result: dict, plots: dict[str, list[Path]]) -> str:
    e = html.escape
    r = result
    target = r["target"]
    what = (f"{e(repr(target))} ({r['task']})" if target
            else "none (pass --target for class balance, association and leakage checks)")
    parts = [
        f"<h1>forgeml data profile: {e(r['source'] or 'table')}</h1>",
        f"<p class=note>{r['rows']:,} rows · {r['columns']} columns · {r['memory_mb']} MB in memory · target: {what}</p>",
        "<h2>Warnings</h2>",
    ]
    if r["warnings"]:
        parts.append("<ul>" + "".join(f"<li class=bad>{e(w['message'])}</li>" for w in r["warnings"]) + "</ul>")
    else:
        parts.append("<p class=good>No data-quality warnings.</p>")

    parts.append("<h2>Columns</h2>")
    parts.append("<p class=note>type: what forgeml train infers for the column (forgeml.features.detect); unique: distinct "
                 "non-missing values.</p>")
    rows = []
    for c in r["column_info"]:
        s = c["stats"] or {}
        top = ", ".join(f"{v} ({n:,})" for v, n in (c["top"] or []))
        summary = (f"mean {s['mean']:.4g}, median {s['median']:.4g}, range {s['min']:.4g} … {s['max']:.4g}"
                   if s.get("count") else top)
        rows.append([c["name"], c["type"], c["dtype"], f"{c['missing']:,}", f"{c['missing_pct']:.2f}%", f"{c['unique']:,}",
                     summary, ", ".join(FLAG_TEXT[f] for f in (["target"] if c["role"] == "target" else []) + c["flags"])])
    parts.append(table(["column", "type", "dtype", "missing", "missing %", "unique", "values", "notes"], rows))

    parts.append("<h2>Missing values</h2>")
    m = r["missing"]
    if m["cells"]:
        parts.append(f"<p>{m['cells']:,} missing cells ({m['cells_pct']:.2f}% of all cells) in {m['columns_with_missing']} "
                     "column(s).</p>")
        parts.append(table(["column", "missing", "missing %"], [[c["name"], f"{c['missing']:,}", f"{c['missing_pct']:.2f}%"]
                                                                for c in r["column_info"] if c["missing"]]))
    else:
        parts.append("<p class=good>No missing values.</p>")
    parts += [img(p) for p in plots.get("missing", [])]

    parts.append("<h2>Duplicate rows</h2>")
    d = r["duplicates"]
    if d["rows"]:
        parts.append(f"<p class=bad>{d['rows']:,} rows ({d['pct']:.2f}%) repeat an earlier row exactly (all columns), in "
                     f"{d['groups']:,} group(s). The first {len(d['examples'])}:</p>")
        names = list(d["examples"][0]["values"])
        parts.append(table(["rows (0-based)", "copies", *names],
                            [[", ".join(map(str, x["rows"])) + (" …" if x["count"] > len(x["rows"]) else ""), x["count"],
                              *x["values"].values()] for x in d["examples"]]))
    else:
        parts.append("<p class=good>No exact duplicate rows.</p>")

    parts.append("<h2>Outliers (numeric columns)</h2>")
    numeric = [c for c in r["column_info"] if c["stats"] and c["stats"].get("count") and c["role"] == "feature"]
    if numeric:
        parts.append(f"<p class=note>Rule: a value is an outlier when it lies outside [Q1 − {r['rules']['outlier_iqr']}·IQR, "
                     f"Q3 + {r['rules']['outlier_iqr']}·IQR] (IQR = Q3 − Q1; missing and infinite values left out; not applied "
                     "when IQR is 0).</p>")
        parts.append(table(["column", "Q1", "median", "Q3", "lower fence", "upper fence", "outliers", "outliers %"],
                            [[c["name"], c["stats"]["q1"], c["stats"]["median"], c["stats"]["q3"], c["stats"]["lower_fence"],
                              c["stats"]["upper_fence"], "–" if c["stats"]["outliers"] is None else f"{c['stats']['outliers']:,}",
                              "–" if c["stats"]["outliers_pct"] is None else f"{c['stats']['outliers_pct']:.2f}%"]
                             for c in numeric]))
        shown = numeric_to_plot(r["column_info"])
        if len(numeric) > len(shown):
            parts.append(f"<p class=note>Plots: the {len(shown)} columns with the largest outlier shares of {len(numeric)}.</p>")
        parts += [img(p) for p in plots.get("numeric", [])]
    else:
        parts.append("<p class=note>No numeric feature columns.</p>")

    if target:
        parts += _target_html(r, plots)
    parts.append("<h2>Rules</h2>")
    parts.append(table(["rule", "value"], [[k, str(v)] for k, v in r["rules"].items()]))
    parts.append(f"<p class=note>seconds per step: {e(', '.join(f'{k} {v:.2f}' for k, v in r['seconds'].items()))}</p>")
    title = f"forgeml profile {e(r['source'] or '')}"
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title><style>{css()}</style></head>"
            f"<body>{''.join(parts)}</body></html>")


def _target_html(r: dict, plots: dict) -> list[str]:
    e = html.escape
    ts, target = r["target_summary"], r["target"]
    parts = [f"<h2>Target {e(repr(target))}</h2>"]
    if ts.get("missing"):
        parts.append(f"<p class=bad>{ts['missing']:,} rows have no target value; training drops them.</p>")
    if ts.get("classes"):
        rules = r["rules"]
        parts.append(f"<p class=note>classification, {ts['classes_total']} classes. Imbalance rule: the smallest class holds "
                     f"less than {rules['imbalance_min_share']:.0%} of the labelled rows (with more than 5 classes: less than "
                     f"half of its balanced share, 50%/k), or the largest class is more than {rules['imbalance_max_ratio']:g}x "
                     "the smallest.</p>")
        if ts.get("imbalanced"):
            parts.append(f"<p class=bad>Imbalanced: majority {e(repr(ts['majority']))} vs minority {e(repr(ts['minority']))}, "
                         f"ratio {ts['ratio']:.1f}:1 (minority share {ts['minority_share']:.2%}).</p>")
        elif "ratio" in ts:
            parts.append(f"<p class=good>Balanced enough: majority/minority ratio {ts['ratio']:.1f}:1.</p>")
        parts.append(table(["class", "rows", "%"], [[c["label"], f"{c['count']:,}", f"{c['pct']:.2f}%"] for c in ts["classes"]]))
        if ts["classes_total"] > len(ts["classes"]):
            parts.append(f"<p class=note>{ts['classes_total'] - len(ts['classes'])} more classes not listed.</p>")
    elif ts.get("stats"):
        s = ts["stats"]
        parts.append("<p class=note>regression target: distribution</p>")
        parts.append(table(["count", "mean", "std", "min", "Q1", "median", "Q3", "max"],
                            [[f"{s['count']:,}", s["mean"], s["std"], s["min"], s["q1"], s["median"], s["q3"], s["max"]]]))
    parts += [img(p) for p in plots.get("target", [])]

    a, leak = r.get("association"), r.get("leakage")
    if not a:
        return parts
    parts.append("<h2>Features most associated with the target</h2>")
    parts.append(f"<p class=note>Mutual information between each feature and the target on {_rows(a)} "
                 f"(numeric features in {r['rules']['mi_bins']} quantile bins, categoricals by their {r['rules']['mi_levels']} "
                 "most frequent levels, missing as its own level; Miller–Madow bias correction). share = MI / entropy of the "
                 f"target: 1 means the feature determines the target. single-feature score: held-out "
                 f"{leak['single_feature']['metric']} of the feature alone (see leakage).</p>")
    parts.append(table(["feature", "type", "MI (bits)", "share of target entropy", "single-feature score"],
                        [[f["feature"], f["type"], f["mi_bits"], f["mi_share"], f["single_feature_score"]]
                         for f in a["features"][:TOP_FEATURES]]))
    parts += [img(p) for p in plots.get("association", [])]

    parts.append("<h2>Leakage suspects</h2>")
    sf = leak["single_feature"]
    parts.append(f"<p class=note>(a) One feature alone: a depth-{r['rules']['leak_tree_depth']} decision tree (numeric) or a "
                 f"per-level majority/mean lookup (categorical) fitted on {sf['rows_fit']:,} sampled rows and scored on "
                 f"{sf['rows_heldout']:,} other rows. Rule: {sf['metric']} ≥ {sf['threshold']} marks a suspect (a useless "
                 f"feature scores about {sf['baseline']:.2f}).</p>")
    suspects = [s for s in sf["scores"] if s.get("suspect")]
    if suspects:
        parts.append("<ul>" + "".join(f"<li class=bad>{e(s['feature'])}: {sf['metric']} {s['score']:.4f} ({e(s['model'])})</li>"
                                      for s in suspects) + "</ul>")
    else:
        parts.append("<p class=good>No single feature predicts the target almost perfectly.</p>")
    parts.append(table(["feature", "model", sf["metric"]], [[s["feature"], s["model"], s["score"]] for s in sf["scores"][:10]]))
    d = leak["duplicates"]
    parts.append(f"<p class=note>(b) Duplicate feature vectors across the split: rows with identical values in the feature "
                 f"columns (ID-like columns left out), placed with forgeml's default split ({e(d['split'])}).</p>")
    parts.append(table(["measure", "value"], [
        ["labelled rows", f"{d['rows']:,}"],
        ["feature vectors occurring more than once", f"{d['duplicated_vectors']:,}"],
        ["rows in those groups", f"{d['rows_in_duplicates']:,}"],
        ["vectors on both sides of the split (train and validation/test)", f"{d['straddling_vectors']:,}"],
        ["validation/test rows with an identical copy in training", f"{d['heldout_rows_seen_in_train']:,}"],
        ["… of them test rows", f"{d['test_rows_seen_in_train']:,}"],
        ["vectors with conflicting target values", f"{d['conflicting_vectors']:,}"],
    ]))
    if d["straddling_vectors"]:
        parts.append("<p class=bad>Held-out scores will be optimistic: drop duplicate feature rows before training, or keep "
                     "each group of duplicates on one side of the split.</p>")
    return parts


def write_report(result: dict, path: Path) -> Path:
    """Render the plots into a temporary folder, embed them, and write one self-contained HTML file."""
    from forgeml.artifacts import write_text
    from forgeml.errors import ConfigError

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder; give the report's file name, e.g. {path / 'profile.html'}")
    with tempfile.TemporaryDirectory(prefix="forgeml-profile-") as tmp:
        text = render(result, make_plots(result, Path(tmp)))
    try:
        write_text(path, text)
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {path}: {exc.strerror or exc}") from None
    return path


# ------------------------------------------------------------------------------------------------ terminal
def print_summary(result: dict, console) -> None:
    """The profile as Rich tables (stdout): overview, columns, target, top features, duplicates and every warning."""
    from rich.table import Table

    r = result
    target = r["target"]
    console.print(f"[bold]profile of {r['source'] or 'table'}[/]: {r['rows']:,} rows x {r['columns']} columns"
                  + (f"; target {target!r} ({r['task']})" if target else "; no target (pass --target COL for class balance, "
                     "association and leakage checks)"), highlight=False)

    table = Table(title="columns")
    for name in ("column", "type", "missing", "missing %", "unique", "outliers (IQR)", "notes"):
        table.add_column(name, justify="left" if name in ("column", "type", "notes") else "right")
    for c in r["column_info"]:
        s = c["stats"] or {}
        out = "" if not s.get("count") else ("IQR 0" if s["outliers"] is None else f"{s['outliers']:,} ({s['outliers_pct']:.1f}%)")
        notes = ", ".join(FLAG_TEXT[f] for f in (["target"] if c["role"] == "target" else []) + c["flags"])
        table.add_row(c["name"], c["type"], f"{c['missing']:,}", f"{c['missing_pct']:.1f}%", f"{c['unique']:,}", out,
                      f"[yellow]{notes}[/]" if c["flags"] else notes)
    console.print(table)

    ts = r.get("target_summary")
    if ts and ts.get("classes"):
        title = f"class balance of {target!r}" + (f" ({ts['classes_total']} classes, top 10)" if ts["classes_total"] > 10 else "")
        t = Table(title=title, min_width=len(title) + 4)
        for name in ("class", "rows", "%"):
            t.add_column(name, justify="left" if name == "class" else "right")
        for c in ts["classes"][:10]:
            t.add_row(c["label"], f"{c['count']:,}", f"{c['pct']:.2f}")
        console.print(t)
    elif ts and ts.get("stats"):
        s = ts["stats"]
        title = f"distribution of {target!r} (regression)"
        t = Table(title=title, min_width=len(title) + 4)
        for name in ("count", "mean", "std", "min", "median", "max"):
            t.add_column(name, justify="right")
        t.add_row(f"{s['count']:,}", *(f"{s[k]:.4g}" for k in ("mean", "std", "min", "median", "max")))
        console.print(t)

    a = r.get("association")
    if a and a["features"]:
        sf = r["leakage"]["single_feature"]
        t = Table(title=f"features most associated with {target!r} ({_rows(a)})")
        for name in ("feature", "type", "MI bits", "share", f"alone: {sf['metric']}"):
            t.add_column(name, justify="left" if name in ("feature", "type") else "right")
        suspects = {s["feature"] for s in sf["scores"] if s.get("suspect")}
        for f in a["features"][:TOP_FEATURES]:
            score = "–" if f["single_feature_score"] is None else f"{f['single_feature_score']:.4f}"
            t.add_row(f"[red]{f['feature']}[/]" if f["feature"] in suspects else f["feature"], f["type"],
                      f"{f['mi_bits']:.4f}", f"{f['mi_share']:.3f}", score)
        console.print(t)

    d = r["duplicates"]
    line = f"exact duplicate rows: {d['rows']:,} ({d['pct']:.2f}%)"
    if r.get("leakage"):
        ds = r["leakage"]["duplicates"]
        line += (f"; duplicated feature vectors: {ds['duplicated_vectors']:,}, straddling the default split: "
                 f"{ds['straddling_vectors']:,} ({ds['heldout_rows_seen_in_train']:,} held-out rows seen in training)")
    console.print(line, highlight=False)
    if r["warnings"]:
        console.print(f"[bold yellow]{len(r['warnings'])} warning(s):[/]")
        for w in r["warnings"]:
            console.print("[yellow]![/] " + _escape(w["message"]), highlight=False)
    else:
        console.print("[green]no data-quality warnings[/]")


def _rows(association: dict) -> str:
    return f"{association['rows']:,} {'sampled ' if association.get('sampled') else ''}rows"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
