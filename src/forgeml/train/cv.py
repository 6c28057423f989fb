"""``forgeml cv``: K-fold cross-validation, one full run per fold, with the mean and spread of each test metric."""
from __future__ import annotations

import shutil
from typing import Callable, Optional, Union

import numpy as np

from forgeml import artifacts
from forgeml.config import Config, build_config
from forgeml.errors import ConfigError, RunError
from forgeml.run import summary
from forgeml.tasks import summary_keys, task_tags
from forgeml.train.pipeline import stderr_say, train

Say = Callable[[str], None]


def cross_validate(
    config: Union[Config, dict, None] = None,
    *,
    folds: int = 5,
    overwrite: bool = False,
    quiet: bool = False,
    say: Optional[Say] = None,
    source: str = "options",
    **options,
) -> dict:
    """K-fold cross-validation: one full run per fold in runs/<name>/fold-<k> (fold k is its test split; validation
    comes from the rest), then the mean and standard deviation of each test metric, beside the baseline's."""
    from forgeml.evaluate import plots
    from forgeml.tracking import Tracker, default_uri

    say = say or stderr_say(quiet)
    cfg = config if isinstance(config, Config) else build_config({**(config or {}), **options}, source)
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")
    from forgeml.tasks import family_of

    refusal = getattr(family_of(cfg), "folds_refused", None)  # a family evaluated another way (forecasting)
    if refusal:
        raise ConfigError(f"forgeml cv: {refusal}")
    cv_dir = cfg.run_dir
    if cv_dir.exists() and any(cv_dir.iterdir()) and not overwrite:
        raise RunError(f"{cv_dir} already exists; use --overwrite to replace it, or --name for a new one")
    if cv_dir.exists():
        shutil.rmtree(cv_dir)
    tracking = cfg.tracking.model_copy(update={"uri": cfg.tracking.uri or default_uri(cfg.runs_dir)})
    # one parent MLflow run; each fold's run is nested under it (forgeml.tracking starts a child inside a run)
    cv_dir.mkdir(parents=True, exist_ok=True)  # the default store lives in the runs folder
    parent = Tracker(tracking.uri, cfg.runs_dir, tracking.experiment, cfg.name)
    try:
        parent.params({"cv.folds": folds, "model.name": cfg.model.name, "data.source": cfg.data.source})
        result_summary = _folds(cfg, folds, cv_dir, tracking, source, quiet, say, plots)
        parent.summary({f"mean_test_{k}": v["mean"] for k, v in result_summary["model"].items()}, [cv_dir / "cv.json"])
    except BaseException:
        parent.end("FAILED")
        raise
    parent.end()
    return {**result_summary, **({"tracking": {"uri": parent.uri, "run_id": parent.run_id}} if parent.enabled else {})}


def _folds(cfg: Config, folds: int, cv_dir, tracking, source: str, quiet: bool, say: Say, plots) -> dict:
    per_fold = []
    for k in range(folds):
        split = cfg.data.split.model_copy(update={"folds": folds, "fold": k})
        fold_cfg = build_config({**cfg.model_dump(mode="json"), "name": f"fold-{k + 1}", "runs_dir": str(cv_dir),
                                 "data": {**cfg.data.model_dump(mode="json"), "split": split.model_dump(mode="json")},
                                 "tracking": tracking.model_dump(mode="json")}, source)
        say(f"[bold]fold {k + 1}/{folds}[/]")
        result = train(fold_cfg, overwrite=True, quiet=quiet, say=say)
        m = result.metrics
        per_fold.append({"fold": k + 1, "run": str(result.run_dir), "model": m["model"], "rows": result.manifest["data"]["rows"],
                         "test": summary(result.manifest["task"], m["test"]),
                         "baseline_test": summary(result.manifest["task"], m["baseline"]["test"]),
                         **({"per_class": m["test"]["per_class"]} if "per_class" in m["test"] else {})})
    task_name = result.manifest["task"]
    keys = [k for k in summary_keys(task_name) if all(f["test"].get(k) is not None for f in per_fold)]

    def spread(which: str) -> dict:
        return {k: {"mean": float(np.mean(v := [f[which][k] for f in per_fold])), "std": float(np.std(v, ddof=1))} for k in keys}

    result_summary = {"folds": folds, "task": task_name, "metric_keys": keys, "std": "sample standard deviation (ddof=1) across folds",
               "split": {"group_col": cfg.data.split.group_col, "time_col": cfg.data.split.time_col,
                         "stratified": "stratify" in task_tags(task_name) and cfg.data.split.stratify and not cfg.data.split.group_col},
               "model": spread("test"), "baseline": {"name": result.metrics["baseline"]["name"], **spread("baseline_test")},
               "per_fold": per_fold}
    plots.cross_validation(per_fold, keys, cv_dir / "cv.png")
    artifacts.write_json(cv_dir / "cv.json", result_summary)
    return result_summary
