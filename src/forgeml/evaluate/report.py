"""The run's report.html: its own sections (metrics beside the baseline, data preparation, model selection, per-class
scores, training, plots, config) plus the sections other capabilities wrote into the run's ``report/`` folder
(federated learning, compression, explanations...). The report joins them by key; it imports none of them."""
from __future__ import annotations

import html
import json
from pathlib import Path

from forgeml import artifacts
from forgeml.evaluate.html import img, page, table
from forgeml.core import better
from forgeml.evaluate.metrics import SUMMARY_KEYS, score_text

SECTIONS = "report"  # RUN/report/<key>.html, joined in key order
TRAINING_PLOTS = ("learning_curves", "confusion_matrix", "roc", "pr", "regression")  # runs that did not list theirs


def write_section(run_dir: Path, key: str, parts: list[str]) -> None:
    """Add (or replace) a section of the run's report. ``key`` orders it: the report's own sections are 10-metrics,
    20-preparation, 25-privacy, 30-selection, 40-per-class, 50-training, 60-plots, 99-config; e.g. 70-compression
    lands after the plots. Call ``rerender`` afterwards."""
    artifacts.write_text(run_dir / SECTIONS / f"{key}.html", "".join(parts))


def rerender(run_dir: Path) -> None:
    """(Re)build report.html from what the run folder holds."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    manifest = artifacts.read_manifest(run_dir)
    sections = _own_sections(run_dir, manifest, metrics, (run_dir / "config.yaml").read_text())
    folder = run_dir / SECTIONS
    if folder.is_dir():
        sections.update({f.stem: [f.read_text()] for f in folder.glob("*.html")})
    parts = [p for key in sorted(sections) for p in sections[key]]
    artifacts.write_text(run_dir / "report.html", page(f"forgeml {run_dir.name}", parts))


def _own_sections(run_dir: Path, manifest: dict, metrics: dict, config_yaml: str) -> dict[str, list[str]]:
    task = manifest["task"]
    keys = [k for k in metrics.get("summary_keys") or SUMMARY_KEYS[task] if metrics["test"].get(k) is not None]
    model_name = manifest["model"]["name"]
    base = metrics.get("baseline")
    rows = [[f"{model_name} (chosen)", *[metrics["test"].get(k) for k in keys]]]
    if base:
        rows.append([f"baseline: {base['name']}", *[base["test"].get(k) for k in keys]])
    summary = [
        f"<h1>forgeml run: {html.escape(run_dir.name)}</h1>",
        f"<p class=note>task: {task} · model: {html.escape(model_name)} · data: {html.escape(manifest['data']['source'])} · "
        f"rows train/val/test: {manifest['data']['rows']['train']}/{manifest['data']['rows']['val']}/{manifest['data']['rows']['test']}</p>",
        "<h2>Test metrics</h2>",
        table(["model", *keys], rows),
    ]
    if base:
        primary = metrics.get("primary_metric")
        m, b = metrics["test"].get(primary), base["test"].get(primary)
        if m is not None and b is not None:
            won = better(primary, m, b)
            summary.append(f"<p class={'good' if won else 'bad'}>On test {primary}, the model {'beats' if won else 'does not beat'} "
                           f"the baseline ({m:.4f} vs {b:.4f}).</p>")
    sections = {"10-metrics": summary, "20-preparation": _preparation(manifest)}
    if metrics.get("privacy"):
        sections["25-privacy"] = _privacy(metrics["privacy"], manifest["data"].get("preparation", {}), metrics.get("choice"))
    selection = []
    if len(metrics.get("candidates", [])) > 1:
        selection.append(table(["candidate", metrics["primary_metric"] + " (val)", "train seconds"],
                               [[c["model"], c["val"].get(metrics["primary_metric"]), c.get("seconds")]
                                for c in metrics["candidates"]]))
    selection += _choice(manifest.get("choice"))
    if selection:
        sections["30-selection"] = ["<h2>Model selection (validation)</h2>", *selection]
    if "per_class" in metrics["test"]:
        per = metrics["test"]["per_class"]
        sections["40-per-class"] = ["<h2>Per class (test)</h2>", table(
            ["class", "precision", "recall", "f1", "support"], [[lab, v["precision"], v["recall"], v["f1"], v["support"]]
                                                              for lab, v in per.items()])]
    for title, t in (metrics["test"].get("tables") or {}).items():  # a family's own tables (cluster profiles)
        sections.setdefault("45-tables", []).extend([f"<h2>{html.escape(title.capitalize())} (test)</h2>",
                                                     table(t["columns"], t["rows"])])
    if metrics.get("training"):
        t = metrics["training"]
        sections["50-training"] = [
            f"<p class=note>trained {t['epochs_run']} epochs in {t['seconds']:.1f} s on {t['device']} ({t['precision']}"
            + (f", {t['processes']} processes, {t['parallel']}" if t.get("parallel") else "") + "); "
            f"best epoch {t['best_epoch'] + 1} by {t['monitor']}{' (stopped early)' if t['stopped_early'] else ''}"
            + (f"; {t['trainable_parameters']:,} of {t['parameters']:,} parameters trained"
               if t.get("trainable_parameters") and t["trainable_parameters"] < t.get("parameters", 0) else "") + ".</p>"]
    plots = [run_dir / "plots" / f"{name}.png" for name in metrics.get("plots") or TRAINING_PLOTS]
    sections["60-plots"] = ["<h2>Plots</h2>", *(img(p) for p in plots if p.is_file())]
    sections["99-config"] = ["<h2>Config</h2>", f"<pre>{html.escape(config_yaml)}</pre>"]
    return sections


BASELINE_VERDICTS = {  # forgeml.train.choice's verdicts, in words
    "candidate": "it was a candidate above",
    "kept_better": "the kept model beat it",
    "tie": "a tie: the kept model was kept",
    "n/a": "a score is n/a: not compared",
    "baseline_better": "the baseline beat the kept model",
}


def _choice(choice) -> list[str]:
    """Why the kept model was kept and how the baseline compared on validation (the manifest's ``choice``)."""
    if not choice:
        return []
    out = [f"<p>kept <b>{html.escape(choice['kept'])}</b>: {html.escape(choice.get('reason', ''))}</p>"]
    if base := choice.get("baseline"):
        verdict = BASELINE_VERDICTS.get(base.get("verdict"), base.get("verdict", ""))
        how = ""
        if base.get("verdict") == "baseline_better":
            how = (f" by {choice.get('baseline_beats_kept_by', 0):.4f}; train with --model {base['name']} to keep it"
                   if base.get("servable") else f" by {choice.get('baseline_beats_kept_by', 0):.4f}; forgeml cannot "
                   f"serve {base['name']}: compare before serving the kept model")
        out.append(f"<p class={'bad' if base.get('verdict') == 'baseline_better' else 'note'}>baseline "
                   f"{html.escape(base['name'])}: validation {choice['metric']} {score_text(base.get('validation'))} "
                   f"({html.escape(verdict)}{html.escape(how)})</p>")
    return out


def _preparation(manifest: dict) -> list[str]:
    """What data.clean and data.balance did, fitted on the training split (empty when nothing beyond the defaults)."""
    pre, prep = manifest["preprocessing"], manifest["data"].get("preparation", {})
    num, cat = pre.get("numeric", {}), pre.get("categorical", {})
    lines = []
    if prep.get("missing_target"):
        lines.append(f"{prep['missing_target']} rows without a target value dropped before splitting")
    for e in prep.get("excluded_columns", []):
        lines.append(f"column {e['column']!r} left out ({e['reason']}: {e['detail']}); keep it with data.features: "
                     f"{{{e['column']}: {e['type']}}}")
    for e in prep.get("leak_suspects_kept", []):
        lines.append(f"possible leak kept (the only input left): {e['column']!r} {e['detail']}")
    if "duplicates" in prep:
        lines.append(f"{prep['duplicates']} exact duplicate rows removed before splitting")
    for why, n in prep.get("training_rows_dropped", {}).items():
        lines.append(f"{n} training rows dropped ({why}); validation and test rows are filled and clipped instead")
    if num.get("scale_method", "standard") != "standard":
        lines.append(f"numeric columns scaled: {num['scale_method']}")
    if "clip" in num and not num.get("bounded"):
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
        if bal.get("detectability_roc_auc") is not None:
            lines.append(f"synthetic rows from a {bal['generator']}: a classifier tells them from real rows of their "
                         f"class at ROC-AUC {bal['detectability_roc_auc']:.3f} (0.5: it cannot)")
    if tuned := manifest["target"].get("threshold_tuning"):
        labels = manifest["target"].get("labels", [])
        lines.append(f"decision threshold P({labels[1] if len(labels) > 1 else 'positive'}) >= {tuned['threshold']:.4f}, "
                     f"tuned on validation for {tuned['tuned_for']} (val precision {tuned['val_precision']:.3f}, "
                     f"recall {tuned['val_recall']:.3f})")
    if not lines:
        return []
    return ["<h2>Data preparation</h2><ul>", *(f"<li>{html.escape(line)}</li>" for line in lines), "</ul>"]


def _privacy(p: dict, prep: dict, choice: dict | None = None) -> list[str]:
    """DP-SGD runs (train.privacy): the budget actually spent, how, and what the guarantee covers (the preprocessing:
    forgeml.features.private; several candidates: their shares of the budget and the choice between them)."""
    rows = [["epsilon spent", p["epsilon"]], ["epsilon budget", p["target_epsilon"]], ["delta", f"{p['delta']:.3g}"],
            ["noise multiplier", p["noise_multiplier"]], ["per-row clipping norm", p["max_grad_norm"]],
            ["steps", p["steps"]], ["sample rate", p["sample_rate"]], ["accountant", p["accountant"]]]
    replaced = ", ".join(f"{r['layer']} ({r['from']} -> {r['to']})" for r in p.get("replaced_layers", []))
    parts = ["<h2>Differential privacy</h2>",
             "<p class=note>Trained with DP-SGD (Opacus): Poisson-sampled batches, each row's gradient clipped, Gaussian "
             "noise added. The weights are (epsilon, delta)-differentially private with respect to the training rows; "
             "the baseline is trained without DP (for reference only), and the preprocessing below says what it learned "
             "from the private rows.</p>",
             table(["", "value"], rows)]
    if replaced:
        parts.append(f"<p class=note>layers replaced for DP: {html.escape(replaced)}</p>")
    if share := p.get("share"):
        parts.append(f"<p class=note>{html.escape(share['how'])}: the budget {share['budget_epsilon']:g} covers all of "
                     "them together. The choice between them on the validation rows is not covered by epsilon.</p>")
    private = prep.get("private_preprocessing")
    if private:
        rows = [[r["type"], ", ".join(map(str, r["columns"])), r["how"], "yes"] for r in private["covered_by_epsilon"]]
        rows += [[r["type"], ", ".join(map(str, r["columns"])), f"{r['what']} fitted on the private training rows", "no"]
                 for r in private["fitted_on_private_rows"]]
        parts += ["<h3>Preprocessing</h3>", table(["type", "columns", "how", "needs no private statistic"], rows)]
    return parts
