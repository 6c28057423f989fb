"""What a search leaves in the run: tune.json (every trial: values, score, state, seconds; the best; the config as
given when the study measured it), Optuna's plots (optimization history, parameter importances, parallel
coordinates) and a section of the run's report."""
from __future__ import annotations

import html
import json
import warnings
from pathlib import Path

from forgeml import artifacts
from forgeml.config import Config
from forgeml.run import RunResult, summary as test_summary
from forgeml.tune.space import Space

IMPORTANCE_MIN_TRIALS = 5  # finished trials before parameter importances mean something (fANOVA on fewer is noise)
REPORT_KEY = "65-tuning"  # after the run's own plots (forgeml.evaluate.report)
SHOWN_TRIALS = 20


def trial_row(t, space: Space) -> dict:
    row = {"trial": t.number + 1, "state": t.state.name.lower(), "value": t.value,
           "params": t.user_attrs.get("params") or space.decode(t.params),
           "seconds": round((t.datetime_complete - t.datetime_start).total_seconds(), 3)
           if t.datetime_complete and t.datetime_start else None,
           "run": t.user_attrs.get("run")}
    for key in ("default_config", "worker", "pruned_after_epoch", "pruned_after_round", "pruned_on", "error", "traceback"):
        if key in t.user_attrs:
            row[key] = t.user_attrs[key]
    if t.intermediate_values:
        row["last_epoch_score"] = t.intermediate_values[max(t.intermediate_values)]
    return row


def trial_test(row: dict, run_dir: Path) -> dict | None:
    """A finished trial's test scores, read from its run for the report only (nothing chooses by them)."""
    path = run_dir / (row.get("run") or "-") / "metrics.json"
    if row["state"] != "complete" or not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    task = json.loads((path.parent / artifacts.MANIFEST).read_text())["task"]
    return test_summary(task, metrics["test"])


def write_results(study, cfg: Config, space: Space, primary: str, direction: str, storage: str, seconds: float,
                  final: RunResult) -> dict:
    run_dir = final.run_dir
    rows = [trial_row(t, space) for t in study.get_trials(deepcopy=False)]
    best = study.best_trial
    counts = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail", "running", "waiting")}
    default = next((r for r in rows if r.get("default_config")), None)
    opts = cfg.tune
    out = {
        "study": cfg.name, "storage": storage, "direction": direction,
        "objective": f"validation {primary} of each trial's kept model; the test split chooses nothing",
        "metric": primary, "sampler": f"TPE (seed {opts.seed}, worker k: seed + k)", "pruner": opts.pruner,
        "workers": opts.workers, "space_from": space.origin, "space": space.describe(),
        "trials_wanted": opts.trials, "counts": {k: v for k, v in counts.items() if v}, "seconds": round(seconds, 2),
        "best": {"trial": best.number + 1, "value": best.value, "params": rows[best.number]["params"]},
        "default": None if default is None else {
            "trial": default["trial"], "state": default["state"], "value": default["value"],
            "test": trial_test(default, run_dir)},
        "final": {"run": str(run_dir), "val": {primary: final.metrics["val"].get(primary)},
                  "test": test_summary(final.manifest["task"], final.metrics["test"])},
        "trials": rows,
    }
    made = plots(study, run_dir / "plots", len(space.params), primary)
    out["plots"] = [p.stem for p in made]
    artifacts.write_json(run_dir / "tune.json", out)
    report_section(run_dir, out, made)
    return out


def plots(study, folder: Path, n_params: int, primary: str) -> list[Path]:
    """Optuna's matplotlib plots: the history always, importances with >= 2 parameters and enough finished trials,
    parallel coordinates with >= 2 finished trials. A plot Optuna cannot draw here is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as om

    finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    wanted = [("tune_history", lambda: om.plot_optimization_history(study, target_name=f"val {primary}"))]
    if n_params >= 2 and finished >= IMPORTANCE_MIN_TRIALS:
        wanted.append(("tune_importances", lambda: om.plot_param_importances(study)))
    if finished >= 2:
        wanted.append(("tune_parallel", lambda: om.plot_parallel_coordinate(study, target_name=f"val {primary}")))
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for name, draw in wanted:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                ax = draw()
            except Exception:  # e.g. importances when every finished trial scored the same
                plt.close("all")
                continue
        fig = getattr(ax, "figure", None) or ax.flat[0].figure
        fig.set_size_inches(max(8.0, 1.6 * (n_params + 1)), 4.5)
        fig.tight_layout()
        fig.savefig(folder / f"{name}.png", dpi=100)
        plt.close(fig)
        made.append(folder / f"{name}.png")
    return made


def report_section(run_dir: Path, out: dict, made: list[Path]) -> None:
    from forgeml.evaluate.html import img, table
    from forgeml.evaluate.report import rerender, write_section

    metric = out["metric"]
    counts = ", ".join(f"{n} {s}" for s, n in out["counts"].items())
    keys = list(out["space"])
    done = sorted((r for r in out["trials"] if r["value"] is not None), key=lambda r: r["value"],
                  reverse=out["direction"] == "maximize")
    shown = done[:SHOWN_TRIALS] + [r for r in out["trials"] if r["value"] is None][:SHOWN_TRIALS]
    rows = [[r["trial"], r["state"] + (" (config as given)" if r.get("default_config") else ""), r["value"],
             r["seconds"], *[json.dumps(r["params"].get(k)) for k in keys]] for r in shown]
    parts = ["<h2>Hyper-parameter search (validation)</h2>",
             f"<p class=note>{len(out['trials'])} trials ({counts}) in {out['seconds']:.0f} s, {html.escape(out['sampler'])}, "
             f"pruner {out['pruner']}; objective: {html.escape(out['objective'])} ({out['direction']}). This run is "
             f"trial {out['best']['trial']}'s config trained again; the trials are in trials/ and tune.json.</p>"]
    if out["default"] and out["default"]["value"] is not None:
        parts.append(f"<p>validation {metric}: best trial {out['best']['value']:.4f}, the config as given (trial "
                     f"{out['default']['trial']}) {out['default']['value']:.4f}.</p>")
    parts.append(table(["trial", "state", f"val {metric}", "seconds", *keys], rows))
    parts += [img(p) for p in made]
    write_section(run_dir, REPORT_KEY, parts)
    rerender(run_dir)
