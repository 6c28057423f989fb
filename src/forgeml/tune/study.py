"""``forgeml tune``: the study, its trials, and the best trial's config trained as the run runs/<name>.

runs/<name>/ is an ordinary run (predict, export, serve it as usual) with the search beside it: trials/trial-K (each
trial's own run), the study's storage (study.db, or study.journal with workers), tune.json and the tune_* plots. The
final training replaces the run folder, so the search's files are set aside for its duration (in runs/.<name>.tuning,
moved back afterwards, and on the next start if the process was killed)."""
from __future__ import annotations

import json
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

from forgeml.config import Config, TuneConfig, build_config
from forgeml.core import lower_is_better
from forgeml.errors import ConfigError, RunError, require
from forgeml.run import RunResult
from forgeml.tune import search
from forgeml.tune.space import Space, apply, build_space
from forgeml.tune.storage import local_file, open_storage, shown, spec_for

Say = Callable[[str], None]
SEARCH_ATTR = "forgeml.search"  # the study's user attribute: the config and space it searches


@dataclass
class TuneResult:
    run: RunResult  # the best trial's config, trained as runs/<name>
    summary: dict  # what tune.json holds

    @property
    def run_dir(self) -> Path:
        return self.run.run_dir


class TuneFolder:
    """runs/<name>: the final run, with the search's own files (trials/, study.*) beside it."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.aside = run_dir.parent / f".{run_dir.name}.tuning"
        self.storage_file: Optional[Path] = None  # a --storage file the user put in the run folder

    def owned(self) -> list[Path]:
        extra = [self.storage_file] if self.storage_file and self.storage_file.parent == self.run_dir.resolve() else []
        paths = (self.run_dir / search.TRIALS, *sorted(self.run_dir.glob("study.*")), *extra)
        return [p for p in dict.fromkeys(paths) if p.exists()]

    def restore(self) -> None:
        """Move set-aside search files back (after the final training, or after a process killed during it)."""
        if not self.aside.is_dir():
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for item in self.aside.iterdir():
            if not (self.run_dir / item.name).exists():
                shutil.move(str(item), str(self.run_dir / item.name))
        shutil.rmtree(self.aside, ignore_errors=True)

    def check(self, overwrite: bool) -> None:
        if overwrite:  # a --storage file in the folder stays (its study is deleted through Optuna)
            shutil.rmtree(self.aside, ignore_errors=True)
            for item in self.run_dir.iterdir() if self.run_dir.is_dir() else ():
                if item.resolve() == self.storage_file:
                    continue
                shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
            return
        if (self.run_dir.is_dir() and any(self.run_dir.iterdir()) and not self.owned()
                and not (self.run_dir / "tune.json").is_file()):
            raise RunError(f"{self.run_dir} holds a run that forgeml tune did not make; use --overwrite to replace "
                           "it, or --name for another")

    @contextmanager
    def set_aside(self):
        self.aside.mkdir(parents=True, exist_ok=True)
        for item in self.owned():
            shutil.move(str(item), str(self.aside / item.name))
        try:
            yield
        finally:
            self.restore()


def tune(config: Union[Config, dict, None] = None, *, overwrite: bool = False, quiet: bool = False,
         say: Optional[Say] = None, source: str = "options", **options) -> TuneResult:
    """Search the hyper-parameters in ``tune.space`` (else the model's default space) with Optuna, on the validation
    score of the task's primary metric, then train the best trial's config as the run runs/<name>."""
    require("optuna", "tune", "forgeml tune")
    from rich.markup import escape

    from forgeml.train.pipeline import prepare_for_training, stderr_say, train
    from forgeml.tune.report import write_results
    from forgeml.tune.workers import run_workers

    optuna = search.quiet_optuna()
    say = say or stderr_say(quiet)
    cfg = config if isinstance(config, Config) else build_config({**(config or {}), **options}, source)
    if cfg.tune is None:
        cfg = cfg.model_copy(update={"tune": TuneConfig()})
    opts = cfg.tune
    space = build_space(cfg)  # every key and value checked before anything is read, written or trained
    folder = TuneFolder(cfg.run_dir)
    folder.restore()
    spec = spec_for(opts.storage, cfg.run_dir, opts.workers)
    folder.storage_file = None if spec["default"] else local_file(spec)
    if not spec["default"]:
        storage = open_storage(spec)  # a URL that cannot be reached fails before the data are read
    folder.check(overwrite)
    task = prepare_for_training(cfg.model_copy(update={"tune": None})).task
    primary = task.primary_metric
    direction = "minimize" if lower_is_better(primary) else "maximize"
    if spec["default"]:
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        spec = spec_for(None, cfg.run_dir, opts.workers)
        storage = open_storage(spec)
    elif overwrite and cfg.name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        optuna.delete_study(study_name=cfg.name, storage=storage)
    study = optuna.create_study(study_name=cfg.name, storage=storage, direction=direction, load_if_exists=True,
                                sampler=search.sampler(opts), pruner=search.pruner(opts))
    start(study, cfg, space, direction, spec, say)
    tic = time.perf_counter()
    say(f"[bold]tune {cfg.name}[/]: {opts.trials} trials of {', '.join(p.key for p in space.params)} ({space.origin}); "
        f"{direction} validation {primary}; pruner {opts.pruner}; storage {shown(spec)}")
    parent = study_run(cfg, space, spec)  # MLflow: the study's run, with every trial and the final run nested under it
    tracking = {"uri": parent.uri, "experiment": cfg.tracking.experiment, "parent": parent.run_id} if parent.enabled else None
    try:
        if opts.workers > 1:
            codes = run_workers(cfg, spec, cfg.name, primary, quiet, say, tracking)
            for k, code in enumerate(codes):
                if code:
                    say(f"[bold yellow]warning:[/] worker {k + 1} exited with code {code} (its message is above)")
        else:
            search.optimize(study, cfg, space, primary, say, quiet, tracking=tracking)
        seconds = time.perf_counter() - tic
        best = best_trial(study, primary)
        values = best.user_attrs.get("params") or space.decode(best.params)
        say(f"[bold]best: trial {best.number + 1}[/], validation {primary} {best.value:.4f}: "
            + escape(", ".join(f"{k}={v}" for k, v in values.items())) + f"; training it as {cfg.run_dir}")
        final = build_config(apply(search.trial_base(cfg), values), source)
        with folder.set_aside():
            result = train(final, overwrite=True, quiet=quiet, say=say)
        summary = write_results(study, cfg, space, primary, direction, shown(spec), seconds, result)
    except BaseException:
        parent.end("FAILED")
        raise
    parent.summary({f"best_val_{primary}": summary["best"]["value"], "best_trial": summary["best"]["trial"],
                    **{f"trials_{k}": v for k, v in summary.get("counts", {}).items()}},
                   [cfg.run_dir / "tune.json", *sorted((cfg.run_dir / "plots").glob("tune_*.png"))])
    parent.end()
    return TuneResult(result, summary)


def study_run(cfg: Config, space: Space, spec: dict):
    """The study's own MLflow run (a Tracker, disabled with tracking off), named ``<name>-tune``: the search's
    settings as params; each trial's run and the final run are its children."""
    from forgeml.tracking import Tracker

    parent = Tracker(cfg.tracking.uri, cfg.runs_dir, cfg.tracking.experiment, f"{cfg.name}-tune")
    opts = cfg.tune
    parent.params({"tune.trials": opts.trials, "tune.workers": opts.workers, "tune.seed": opts.seed,
                   "tune.pruner": opts.pruner, "tune.storage": shown(spec), "model.name": cfg.model.name,
                   **{f"space.{p.key}": json.dumps(p.describe()) for p in space.params}})
    return parent


def start(study, cfg: Config, space: Space, direction: str, spec: dict, say: Say) -> None:
    """A new study records what it searches and measures the config as given first (when its values lie in the
    space); a resumed one must search the same; trials left running by a killed process in the run folder's own
    storage are marked failed."""
    from optuna.trial import TrialState

    what = json.dumps({"config": {k: v for k, v in search.trial_base(cfg).items() if k not in ("runs_dir", "tracking")},
                       "space": space.describe(), "direction": direction}, sort_keys=True)
    trials = study.get_trials(deepcopy=False)
    recorded = study.user_attrs.get(SEARCH_ATTR)
    if recorded is not None and recorded != what:
        raise ConfigError(f"the study {cfg.name} ({shown(spec)}) searches another config or space than this one; use "
                          "--overwrite to start it again, or --name for a new study")
    if recorded is None:
        study.set_user_attr(SEARCH_ATTR, what)
    if not trials and (defaults := space.defaults(cfg)) is not None:
        study.enqueue_trial(defaults, user_attrs={"default_config": True})
    if spec["default"]:
        for t in trials:
            if t.state == TrialState.RUNNING:
                study.tell(t.number, state=TrialState.FAIL)
                say(f"trial {t.number + 1} was left running by an interrupted search: marked failed")
    if trials:
        say(f"resuming the study {cfg.name}: {len(trials)} trials so far")


def best_trial(study, primary: str):
    try:
        return study.best_trial
    except ValueError:
        errors = [t.user_attrs["error"] for t in study.get_trials(deepcopy=False) if t.user_attrs.get("error")]
        why = f"; the first error: {errors[0]}" if errors else " (every trial was pruned or failed)"
        raise RunError(f"no trial finished with a validation {primary}{why}. Fix the config or the space and run "
                       "again (with --overwrite to start the study afresh)") from None
