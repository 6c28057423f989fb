"""One trial: the base config with the trial's values, trained as an ordinary run in runs/<name>/trials/trial-K
(quiet; tracked as a child of the study's MLflow run when tracking is on), scored by the validation score of the task's primary metric. The test split chooses nothing.

Each epoch of a network the loop trains reports a validation score to Optuna (through train's ``on_epoch``), and a
trial the pruner stops raises optuna.TrialPruned. A trial that raises anything else is recorded as failed (its error
in the trial's user attributes) and the study goes on."""
from __future__ import annotations

import math
import traceback
from pathlib import Path
from typing import Callable, Optional

from forgeml.config import build_config
from forgeml.core import lower_is_better
from forgeml.errors import ForgeMLError, RunError
from forgeml.tune.space import Space, apply

Say = Callable[[str], None]


class Objective:
    def __init__(self, base: dict, space: Space, primary: str, trials_dir: Path, threads: Optional[int] = None,
                 worker: Optional[int] = None, tracking: Optional[dict] = None):
        """``tracking``: the MLflow store and experiment of the study's parent run, which each trial's run is
        nested under (the parent is the active run of this process); None: trials are not tracked."""
        self.base, self.space, self.primary, self.trials_dir = base, space, primary, trials_dir
        self.threads, self.worker, self.tracking = threads, worker, tracking

    def __call__(self, trial) -> float:
        values = self.space.suggest(trial)
        trial.set_user_attr("params", values)
        name = f"trial-{trial.number + 1}"
        trial.set_user_attr("run", f"trials/{name}")
        if self.worker is not None:
            trial.set_user_attr("worker", self.worker)
        cfg = apply(self.base, values)
        tracked = {"uri": self.tracking["uri"], "experiment": self.tracking["experiment"]} if self.tracking else None
        cfg.update(name=name, runs_dir=str(self.trials_dir), tracking=tracked or {"uri": "none"})
        if self.threads and not cfg["train"].get("threads"):
            cfg["train"]["threads"] = self.threads
        import optuna

        from forgeml.train.pipeline import train

        try:
            result = train(build_config(cfg, "tune trial"), overwrite=True, quiet=True,
                           on_epoch=Reporter(trial, self.primary, cfg))
        except optuna.TrialPruned:
            raise
        except ForgeMLError as exc:
            trial.set_user_attr("error", str(exc).replace("\n", " ")[:500])
            raise
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
            trial.set_user_attr("traceback", traceback.format_exc()[-3000:])
            raise
        value = result.metrics["val"].get(self.primary)
        if value is None or not math.isfinite(value):
            trial.set_user_attr("error", f"validation {self.primary} is {value}")
            raise RunError(f"trial {trial.number + 1}: validation {self.primary} is {value}")
        return float(value)


class Reporter:
    """train's on_epoch: each epoch's validation score of the first network trained (or, for LightGBM, its
    validation loss every few boosting rounds), to Optuna; prunes when told.
    The score is val_<primary metric> when the loop logs it every epoch (accuracy, rmse...), else the early-stopping
    monitor (val_loss by default), negated when it runs the other way than the primary metric: the pruner compares
    trials with each other at the same epoch, so only the order matters."""

    def __init__(self, trial, primary: str, cfg: dict):
        self.trial, self.primary = trial, primary
        es = cfg["train"].get("early_stopping")
        self.monitor = (es or {}).get("monitor") or "val_loss"
        self.learner: Optional[str] = None

    def __call__(self, learner: str, logs: dict) -> None:
        import optuna

        self.learner = self.learner or learner
        if learner != self.learner:  # model: auto trains several; the first one's epochs are the trial's steps
            return
        key = f"val_{self.primary}"
        if logs.get(key) is None:
            key = self.monitor
        value = logs.get(key)
        if value is None or not math.isfinite(value):
            return
        if key != f"val_{self.primary}" and lower_is_better(key) != lower_is_better(self.primary):
            value = -value
        epoch = int(logs["epoch"])
        self.trial.set_user_attr("pruned_on", key)
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            self.trial.set_user_attr("pruned_after_epoch", epoch + 1)
            if "round" in logs:  # boosted trees report every few rounds
                self.trial.set_user_attr("pruned_after_round", int(logs["round"]))
            where = f"round {logs['round']}" if "round" in logs else f"epoch {epoch + 1}"
            raise optuna.TrialPruned(f"pruned after {where} ({key} {logs.get(key):.4f})")


def progress(say: Say, total: int, primary: str, worker: Optional[int] = None) -> Callable:
    """Optuna callback: one line per finished trial (k/N, its values, its outcome, the best so far)."""
    from optuna.trial import TrialState
    from rich.markup import escape  # errors and values hold [brackets]

    def line(study, trial) -> None:
        values = ", ".join(f"{k.split('.')[-1]}={fmt(v)}" for k, v in (trial.user_attrs.get("params") or {}).items())
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete else 0.0
        if trial.state == TrialState.COMPLETE:
            outcome = f"val {primary} {trial.value:.4f}"
        elif trial.state == TrialState.PRUNED:
            outcome = (f"pruned after round {trial.user_attrs['pruned_after_round']}" if "pruned_after_round" in trial.user_attrs
                       else f"pruned after epoch {trial.user_attrs.get('pruned_after_epoch', '?')}")
        else:
            outcome = f"failed: {trial.user_attrs.get('error', 'see tune.json')}"
        best = best_line(study)
        who = f" [worker {worker}]" if worker is not None else ""
        say(escape(f"trial {trial.number + 1}/{total}{who}: {values} -> {outcome} ({seconds:.1f} s){best}"))

    def best_line(study) -> str:
        try:
            best = study.best_trial
        except ValueError:  # no trial finished yet
            return ""
        return f" | best {best.value:.4f} (trial {best.number + 1})"

    return line


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v).replace(" ", "")
