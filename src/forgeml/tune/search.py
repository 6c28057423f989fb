"""The search loop one process runs (the tune command's own process, or each worker): Optuna's seeded TPE sampler,
the pruner, and ``study.optimize`` until the study holds tune.trials trials or tune.timeout has passed."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from forgeml.config import Config, TuneConfig
from forgeml.tune.objective import Objective, progress
from forgeml.tune.space import Space

Say = Callable[[str], None]
TRIALS = "trials"  # runs/<name>/trials/trial-K


def quiet_optuna():
    """Optuna's own log lines (a warning with a traceback for each failed trial) give way to forgeml's progress
    line per trial; tune.json keeps each failure's error."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def sampler(opts: TuneConfig, worker: int = 0):
    import optuna

    return optuna.samplers.TPESampler(seed=opts.seed + worker)


def pruner(opts: TuneConfig):
    """median: stop a trial whose score at an epoch is worse than the median of earlier trials at that epoch (after
    startup_trials trials and warmup_epochs epochs); hyperband: successive halving over epochs; none."""
    import optuna

    if opts.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=opts.startup_trials, n_warmup_steps=opts.warmup_epochs)
    if opts.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3)
    return optuna.pruners.NopPruner()


def trial_base(cfg: Config) -> dict:
    """The config every trial starts from: the given one without its tune section."""
    return cfg.model_copy(update={"tune": None}).model_dump(mode="json")


def trial_threads(cfg: Config, workers: int) -> Optional[int]:
    """Torch threads per trial when several workers share the CPUs this process may use (unless train.threads is
    set)."""
    from forgeml.train.threads import usable_cpus

    if workers <= 1 or cfg.train.threads:
        return None
    return max(1, usable_cpus() // workers)


def optimize(study, cfg: Config, space: Space, primary: str, say: Say, quiet: bool, worker: Optional[int] = None,
             tracking: Optional[dict] = None) -> None:
    """Run trials in this process until the study holds tune.trials trials (any state, any process) or the
    timeout passes; a failing trial is recorded and the next one starts."""
    from optuna.study import MaxTrialsCallback

    opts = cfg.tune or TuneConfig()
    objective = Objective(trial_base(cfg), space, primary, Path(cfg.run_dir) / TRIALS, trial_threads(cfg, opts.workers),
                          worker, tracking)
    callbacks = [MaxTrialsCallback(opts.trials, states=None)]
    if not quiet:
        callbacks.append(progress(say, opts.trials, primary, worker))
    from optuna.trial import TrialState

    started = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)  # not the enqueued one
    remaining = opts.trials - len(study.get_trials(deepcopy=False, states=started))
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, timeout=opts.timeout, catch=(Exception,), callbacks=callbacks,
                       gc_after_trial=True)
