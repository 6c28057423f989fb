"""A self-contained report.html (plots embedded as base64) with metric tables, the baseline and the config."""
from __future__ import annotations

import base64
import html
from pathlib import Path

from forgeml.evaluate.metrics import SUMMARY_KEYS

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:.5em 0}
pre{background:#f7f7f7;padding:1em;overflow:auto}.good{color:#0a0}.bad{color:#b00}.note{color:#555}"""


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4f}"
    return html.escape(str(v))


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def render(run_dir: Path, manifest: dict, metrics: dict, config_yaml: str, plots: list[Path]) -> str:
    task = manifest["task"]
    keys = [k for k in SUMMARY_KEYS[task] if metrics["test"].get(k) is not None]
    model_name = manifest["model"]["name"]
    base = metrics.get("baseline")
    rows = [[f"{model_name} (chosen)", *[metrics["test"].get(k) for k in keys]]]
    if base:
        rows.append([f"baseline: {base['name']}", *[base["test"].get(k) for k in keys]])
    parts = [
        f"<h1>forgeml run: {html.escape(run_dir.name)}</h1>",
        f"<p class=note>task: {task} · model: {html.escape(model_name)} · data: {html.escape(manifest['data']['source'])} · "
        f"rows train/val/test: {manifest['data']['rows']['train']}/{manifest['data']['rows']['val']}/{manifest['data']['rows']['test']}</p>",
        "<h2>Test metrics</h2>",
        _table(["model", *keys], rows),
    ]
    if base:
        primary = metrics.get("primary_metric")
        m, b = metrics["test"].get(primary), base["test"].get(primary)
        if m is not None and b is not None:
            from forgeml.tasks import better

            won = better(primary, m, b)
            parts.append(f"<p class={'good' if won else 'bad'}>On test {primary}, the model {'beats' if won else 'does not beat'} "
                         f"the baseline ({m:.4f} vs {b:.4f}).</p>")
    parts += _preparation(manifest)
    if metrics.get("privacy"):
        parts += _privacy(metrics["privacy"])
    if len(metrics.get("candidates", [])) > 1:
        parts.append("<h2>Model selection (validation)</h2>")
        parts.append(_table(["candidate", metrics["primary_metric"] + " (val)", "train seconds"],
                            [[c["model"], c["val"].get(metrics["primary_metric"]), c.get("seconds")] for c in metrics["candidates"]]))
    if task == "classification":
        per = metrics["test"]["per_class"]
        parts.append("<h2>Per class (test)</h2>")
        parts.append(_table(["class", "precision", "recall", "f1", "support"],
                            [[lab, v["precision"], v["recall"], v["f1"], v["support"]] for lab, v in per.items()]))
    if metrics.get("training"):
        t = metrics["training"]
        parts.append(f"<p class=note>trained {t['epochs_run']} epochs in {t['seconds']:.1f} s on {t['device']} ({t['precision']}); "
                     f"best epoch {t['best_epoch'] + 1} by {t['monitor']}{' (stopped early)' if t['stopped_early'] else ''}.</p>")
    if metrics.get("federated"):
        from forgeml.privacy.federated import report_section

        parts += report_section(run_dir, metrics)
    parts.append("<h2>Plots</h2>")
    parts += [_img(p) for p in plots]
    if (run_dir / "compression.json").is_file():
        parts += _compression(run_dir)
    parts += _explanations(run_dir)
    parts.append("<h2>Config</h2>")
    parts.append(f"<pre>{html.escape(config_yaml)}</pre>")
    return f"<!doctype html><html><head><meta charset=utf-8><title>forgeml {html.escape(run_dir.name)}</title><style>{CSS}</style></head><body>{''.join(parts)}</body></html>"


TRAINING_PLOTS = ("learning_curves", "confusion_matrix", "roc", "pr", "regression")


def _compression(run_dir: Path) -> list[str]:
    import json

    result = json.loads((run_dir / "compression.json").read_text())
    metric = "test_" + result["metric"]
    base = next(v for v in result["variants"] if v["variant"] == "fp32")
    rows = [[v["variant"], v["runtime"], v["size_bytes"] / 1e6, f"{base['size_bytes'] / v['size_bytes']:.2f}x", v[metric],
             v["latency_ms_p50"], v["latency_ms_p95"], f"{base['latency_ms_p50'] / v['latency_ms_p50']:.2f}x",
             round(v["throughput_per_s"])] for v in result["variants"]]
    parts = ["<h2>Compression</h2>",
             f"<p class=note>test split ({result['test_rows']} rows), {result['threads']} threads; ratios against fp32 "
             f"({html.escape(base['runtime'])}).</p>",
             _table(["variant", "runtime", "size (MB)", "smaller", result["metric"], "p50 ms (batch 1)", "p95 ms",
                     "faster (p50)", "rows/s (batch 64)"], rows)]
    plot = run_dir / "plots" / "compression.png"
    if plot.is_file():
        parts.append(_img(plot))
    return parts


def _preparation(manifest: dict) -> list[str]:
    """What data.clean and data.balance did, fitted on the training split (empty when nothing beyond the defaults)."""
    pre, prep = manifest["preprocessing"], manifest["data"].get("preparation", {})
    num, cat = pre.get("numeric", {}), pre.get("categorical", {})
    lines = []
    if "duplicates" in prep:
        lines.append(f"{prep['duplicates']} exact duplicate rows removed before splitting")
    for why, n in prep.get("training_rows_dropped", {}).items():
        lines.append(f"{n} training rows dropped ({why}); validation and test rows are filled and clipped instead")
    if num.get("scale_method", "standard") != "standard":
        lines.append(f"numeric columns scaled: {num['scale_method']}")
    if "clip" in num:
        lines.append("numeric outliers clipped to training quantiles")
    if num.get("indicator"):
        lines.append(f"missing-value indicators for {', '.join(num['indicator'])}")
    if cat.get("missing") == "most_frequent":
        lines.append("missing categories filled with the most frequent training level")
    if pre.get("text", {}).get("normalize"):
        lines.append(f"text normalized: {', '.join(pre['text']['normalize'])}")
    if bal := prep.get("balance"):
        lines.append(f"training split rebalanced by {bal['method']}: class counts {bal['train_class_counts_before']} -> "
                     f"{bal['train_class_counts_after']} (validation and test keep the real balance)")
    if tuned := manifest["target"].get("threshold_tuning"):
        labels = manifest["target"].get("labels", [])
        lines.append(f"decision threshold P({labels[1] if len(labels) > 1 else 'positive'}) >= {tuned['threshold']:.4f}, "
                     f"tuned on validation for {tuned['tuned_for']} (val precision {tuned['val_precision']:.3f}, "
                     f"recall {tuned['val_recall']:.3f})")
    if not lines:
        return []
    return ["<h2>Data preparation</h2><ul>", *(f"<li>{html.escape(line)}</li>" for line in lines), "</ul>"]


def _privacy(p: dict) -> list[str]:
    """DP-SGD runs (train.privacy): the budget actually spent, how, and what the guarantee covers."""
    rows = [["epsilon spent", p["epsilon"]], ["epsilon budget", p["target_epsilon"]], ["delta", f"{p['delta']:.3g}"],
            ["noise multiplier", p["noise_multiplier"]], ["per-row clipping norm", p["max_grad_norm"]],
            ["steps", p["steps"]], ["sample rate", p["sample_rate"]], ["accountant", p["accountant"]]]
    replaced = ", ".join(f"{r['layer']} ({r['from']} -> {r['to']})" for r in p.get("replaced_layers", []))
    parts = ["<h2>Differential privacy</h2>",
             "<p class=note>Trained with DP-SGD (Opacus): Poisson-sampled batches, each row's gradient clipped, Gaussian "
             "noise added. The weights are (epsilon, delta)-differentially private with respect to the training rows; "
             "the preprocessing statistics and the baseline are computed without DP (the baseline is for reference).</p>",
             _table(["", "value"], rows)]
    if replaced:
        parts.append(f"<p class=note>layers replaced for DP: {html.escape(replaced)}</p>")
    return parts


def _explanations(run_dir: Path) -> list[str]:
    """After `forgeml explain RUN`: its section, from RUN/explanations/explanations.json (forgeml.explain.render)."""
    import json

    path = run_dir / "explanations" / "explanations.json"
    if not path.is_file():
        return []
    from forgeml.explain.render import report_section

    return report_section(json.loads(path.read_text()), path.parent)


def rerender(run_dir: Path) -> None:
    """Rebuild report.html from what the run folder holds (after compress or explain add sections)."""
    import json

    from forgeml.artifacts import read_manifest, write_text

    metrics = json.loads((run_dir / "metrics.json").read_text())
    plots = [run_dir / "plots" / f"{name}.png" for name in TRAINING_PLOTS]
    write_text(run_dir / "report.html", render(run_dir, read_manifest(run_dir), metrics,
                                               (run_dir / "config.yaml").read_text(), [p for p in plots if p.is_file()]))
