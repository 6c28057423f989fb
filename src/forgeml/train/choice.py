"""The choice between candidates on validation, with the family's baseline beside them.

The baseline (``Task.baseline``: LightGBM for tables, ``tfidf_linear`` for text, ``lightgbm_tfidf`` for tables with
text, ``pixels_linear`` for images; forgeml.evaluate.baseline) is scored on the validation split before the choice,
like every candidate:

- a baseline that is a registered learner trained as a candidate (every one above under ``model: auto``) competes
  like the others: ``Task.choose`` keeps it when it wins;
- a baseline that is a registered learner not trained as a candidate (``pixels_linear`` beside ``--model cnn``) is
  compared, and a loss to it names the flag that trains it;
- a baseline forgeml cannot serve (scikit-learn's linear model on a plugin type's dense inputs beside a table) cannot
  be kept; when it beats the kept model on validation, the run says so and by how much, and records it in
  ``metrics.json`` and the manifest (``choice``), so a user decides before serving the model;
- ties and scores that are n/a are said as such, never as "better".
"""
from __future__ import annotations

from typing import Callable, Optional

from forgeml.core import LEARNERS, better
from forgeml.evaluate.metrics import score_text as fmt

Say = Callable[[str], None]


def baseline_on_validation(cfg, data, candidates: list[dict], trained_raw: Callable) -> dict:
    """The family's baseline trained on the run's split: its name, raw outputs (val, test), validation metrics and
    whether it was itself one of the candidates (then its outputs are reused, not trained again)."""
    task = data.task
    kind, raw = task.baseline(cfg, data, trained_raw)
    scorer = task.baseline_task(data, raw["val"])
    val = scorer.metrics(data.y["val"], scorer.outputs(raw["val"]))
    return {"name": kind, "raw": raw, "val": val, "candidate": any(c["model"] == kind for c in candidates)}


def why(chosen: dict, candidates: list[dict], metric: str) -> str:
    """Why the kept candidate was kept: its validation score beside the others', or that none could be compared."""
    scores = [c["val"].get(metric) for c in candidates]
    if all(v is None for v in scores):
        return f"validation {metric} is n/a for every candidate: kept the first"
    ties = [c["model"] for c in candidates if c["val"].get(metric) == chosen["val"].get(metric)]
    if len(ties) > 1:
        return f"tie on validation {metric} ({chosen['val'][metric]:.4f}) between {', '.join(ties)}: kept the first"
    return f"best validation {metric}: " + ", ".join(f"{c['model']} {fmt(c['val'].get(metric))}" for c in candidates)


def choose(task, candidates: list[dict], baseline: Optional[dict], say: Say) -> tuple[dict, dict]:
    """The family's choice among the candidates, then the baseline beside it: (the kept candidate, the record that
    metrics.json and the manifest keep under ``choice``)."""
    metric = task.primary_metric
    chosen = task.choose(candidates)
    kept, score = chosen["model"], chosen["val"].get(metric)
    record: dict = {"metric": metric, "kept": kept, "validation": {c["model"]: c["val"].get(metric) for c in candidates}}
    if len(candidates) > 1:
        record["reason"] = why(chosen, candidates, metric)
        say(f"[bold]kept {kept}[/] ({record['reason']})")
    else:  # its validation score was printed as it was trained
        record["reason"] = f"the only candidate (validation {metric} {fmt(score)})"
    if baseline is None:
        return chosen, record
    name, base = baseline["name"], baseline["val"].get(metric)
    record["baseline"] = {"name": name, "validation": base, "candidate": baseline["candidate"],
                          "servable": name in LEARNERS}
    if baseline["candidate"]:
        record["baseline"]["verdict"] = "candidate"  # it competed above
        return chosen, record
    if base is None or score is None:
        verdict = "n/a"
        line = f"baseline {name}: validation {metric} {fmt(base)} vs {kept} {fmt(score)}: n/a, not compared"
    elif better(metric, base, score):
        verdict = "baseline_better"
        record["baseline_beats_kept_by"] = abs(base - score)
        how = (f"train with --model {name} to keep it" if name in LEARNERS else
               f"forgeml cannot save, export or serve {name} (a scikit-learn model), so {kept} is kept; compare before serving it")
        line = (f"[bold yellow]warning:[/] the baseline {name} beat {kept} on validation {metric}: {base:.4f} vs {score:.4f} "
                f"(by {abs(base - score):.4f}); {how}")
    elif better(metric, score, base):
        verdict = "kept_better"
        line = f"{kept} beat the baseline {name} on validation {metric}: {score:.4f} vs {base:.4f}"
    else:
        verdict = "tie"
        line = f"tie with the baseline {name} on validation {metric} ({score:.4f}): kept {kept}"
    record["baseline"]["verdict"] = verdict
    say(line)
    return chosen, record
