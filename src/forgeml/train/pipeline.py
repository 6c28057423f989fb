"""One training run, end to end, for any task family: the family prepares the data (``prepare_run``), every
candidate learner is trained (torch networks by forgeml's loop through the family's ``step``, others by their own
``fit``), the family chooses on validation and finalizes (thresholds), the chosen model and the family's baseline are
scored on the test split, and the run is written (weights, manifest, metrics, plots, report) and tracked.
Engines (DP-SGD...) come from forgeml.train.engines; nothing here knows a learner or a task by name."""
from __future__ import annotations

import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from forgeml import artifacts
from forgeml.config import Config, build_config
from forgeml.errors import RunError
from forgeml.models import get_model, raw_outputs
from forgeml.progress import Say, stderr_say  # noqa: F401  (stderr_say: re-exported)
from forgeml.run import WEIGHTS, RunResult, run_config, signature
from forgeml.tasks import family_of
from forgeml.tasks.supervised import Prepared, params_for  # noqa: F401  (params_for: re-exported)
from forgeml.train.choice import baseline_on_validation, choose, fmt


def prepare_for_training(cfg: Config, say: Say = lambda m: None) -> Prepared:
    """Read, split and encode the data the way the task family does, with its candidate learners."""
    return family_of(cfg).prepare_run(cfg, say)


def train(
    config: Union[Config, dict, None] = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    say: Optional[Say] = None,
    source: str = "options",
    on_epoch: Optional[Callable[[str, dict], None]] = None,
    **options,
) -> RunResult:
    """Train, evaluate, report and track one run. ``options`` are config keys, e.g. data={'source': ...}.
    ``on_epoch(learner name, logs)`` is called after each epoch of a network trained by the loop, after the tracker
    (forgeml tune reports the validation score to Optuna there; an exception it raises stops the run)."""
    import torch

    from forgeml.data.augment import batch_augmenter
    from forgeml.features import augment_roles
    from forgeml.models import get_model
    from forgeml.progress import TrainProgress
    from forgeml.tracking import Tracker
    from forgeml.train import checkpoint
    from forgeml.train.distributed import data_parallel
    from forgeml.train.engines import engine_for, trains_with
    from forgeml.train.loop import fit
    from forgeml.cpus import threads_for_table
    from forgeml.train.threads import native_thread_limits

    cfg = config if isinstance(config, Config) else build_config({**(config or {}), **options}, source)
    parallel = data_parallel(cfg.train)  # started by torchrun (--nproc): this process is one rank of several
    main = parallel is None or parallel.is_main
    say, quiet = (say or stderr_say(quiet), quiet) if main else (lambda msg: None, True)  # rank 0 speaks for all
    run_dir = cfg.run_dir
    if resume:
        if (run_dir / artifacts.MANIFEST).is_file():
            raise RunError(f"--resume: {run_dir} is a finished run (it has its {artifacts.MANIFEST}); there is nothing to "
                           "resume. Use --overwrite to train it again, or --name for a new run")
        if not (run_dir / "config.yaml").is_file() or not any((run_dir / "checkpoints").glob("*/last.json")):
            raise RunError(f"--resume: no checkpoint found in {run_dir / 'checkpoints'}; train without --resume to start fresh")
        cfg = run_config(run_dir)
        say(f"resuming [bold]{run_dir}[/] from its last checkpoint")
    elif run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise RunError(f"{run_dir} already exists; use --resume to continue it, --overwrite to replace it, or --name for a new run")
    if parallel is not None:
        check_parallel(cfg, parallel)
        parallel.barrier()  # every rank has checked the run folder before rank 0 replaces it

    data = prepare_for_training(cfg, say)  # data problems surface before anything is written or replaced
    untrainable = [c for c in data.candidates if not trains_with(get_model(c), cfg.train)]
    if untrainable and cfg.model.name == "auto":
        data.candidates = [c for c in data.candidates if c not in untrainable]
        say(f"privacy: model auto trains only {', '.join(data.candidates)} ({', '.join(untrainable)} cannot be trained with DP-SGD)")
    if "own_run" in data.task.tags:  # a family that trains, scores and writes its run itself (forecasting)
        if parallel is not None:
            raise RunError(f"data-parallel training (--nproc) is not available for {data.task.name}; train it in one process")
        return _own_run(cfg, run_dir, data, say)
    _refuse_before_writing(cfg, data, parallel)
    if not resume and run_dir.exists() and main:
        shutil.rmtree(run_dir)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        artifacts.write_text(run_dir / "config.yaml", cfg.to_yaml())
    task = data.task
    say(f"[bold]config[/] ({'model: auto -> ' + ' vs '.join(data.candidates) if cfg.model.name == 'auto' else 'model: ' + cfg.model.name}):\n"
        + cfg.model_copy(update={"task": cfg.task.model_copy(update={"name": task.name})}).to_yaml())

    tracker = Tracker(cfg.tracking.uri if main else "none", cfg.runs_dir, cfg.tracking.experiment, cfg.name)
    native = native_thread_limits(cfg.train.threads)
    try:
        tracker.params(cfg.model_dump(mode="json") | {"task": task.name})
        # what fitting may see: the target for supervised families; nothing for the others (a label only evaluates)
        y_fit = {s: (data.y[s] if task.needs_target else None) for s in ("train", "val")}
        train_loss = task.training_loss(cfg, y_fit["train"])
        augment = batch_augmenter(cfg.data.augment, augment_roles(data.preprocessor.state))  # as the types declare
        candidates = []
        budget = TimeBudget(cfg.train.time_limit)
        for name in data.candidates:
            params = budget.params(params_for(cfg, name))
            learner = get_model(name)
            spent = bool(candidates) and budget.spent()
            if parallel is not None:
                spent = parallel.agree(spent)  # rank 0's clock decides for every rank
            if spent:
                say(f"  time limit ({cfg.train.time_limit:g} s) spent: {name} not trained")
                continue
            if "torch" not in learner.tags and not main:
                continue  # rank 0 trains a learner with its own fit; the other ranks train only networks
            tic = time.perf_counter()
            dp = None
            if "torch" not in learner.tags:  # a learner with its own fit (LightGBM, IsolationForest...)
                weights = task.sample_weights(cfg, y_fit["train"]) if "sample_weights" in learner.tags else None
                narrate = {"say": say} if "narrates" in learner.tags else {}
                if on_epoch is not None and "reports_rounds" in learner.tags:  # its validation loss every few rounds
                    narrate["on_epoch"] = lambda logs, name=name: on_epoch(name, logs)
                threads = cfg.train.threads or threads_for_table(data.enc["train"])
                model = learner.fit(params, task, data.enc["train"], y_fit["train"], data.enc["val"], y_fit["val"],
                                    cfg.train.seed, threads, sample_weight=weights, **narrate)
                fit_info = None
            else:
                torch.manual_seed(cfg.train.seed)
                model = learner.build(params, data.preprocessor.input_shapes(), task.out_dim)
                task.init_model(model, data)
                dp = engine_for(cfg.train, len(next(iter(data.enc["train"].values()))), len(data.candidates))
                if dp is not None:  # DP-SGD: DP-compatible layers, then fit with it
                    model = dp.prepare(model, data.enc["train"], y_fit["train"], train_loss or task.loss)
                    for note in dp.notes():
                        say(f"privacy: {note}")
                ckpt = run_dir / "checkpoints" / name
                if main:
                    ckpt.mkdir(parents=True, exist_ok=True)
                fit_info = fit(model, task, data.enc["train"], y_fit["train"], data.enc["val"], y_fit["val"],
                               dp.train_config if dp else cfg.train,
                               checkpoint_dir=ckpt, resume=resume and checkpoint.exists(ckpt),
                               progress=TrainProgress(name, quiet), on_epoch=epoch_hook(tracker, name, on_epoch if main else None),
                               loss=train_loss, augment=augment, privacy=dp, parallel=parallel)
                if dp is not None:
                    dp.close()
                    say(f"privacy: {dp.summary()}")
                merge = getattr(model, "merge_adapters", None)
                if merge is not None:  # LoRA: fold the adapters into the weights; the run saves a plain network
                    merge()
            # a model whose fits saw the validation rows (k-fold bagging) gives its out-of-fold outputs on them
            val_raw = getattr(model, "validation_raw", None)
            val_raw = learner.raw(model, data.enc["val"], task) if val_raw is None else val_raw
            val_metrics = task.metrics(data.y["val"], task.outputs(val_raw))
            candidates.append({"model": name, "params": params, "estimator": model, "fit": fit_info, "raw": {"val": val_raw},
                               "val": val_metrics, "seconds": time.perf_counter() - tic,
                               "privacy": dp.report() if dp is not None else None})
            score = val_metrics.get(task.primary_metric)
            part = (f"; {fit_info.trainable:,} of {fit_info.parameters:,} parameters trained"
                    if fit_info is not None and fit_info.trainable < fit_info.parameters else "")
            say(f"  {name}: val {task.primary_metric} = {'n/a' if score is None else f'{score:.4f}'} "
                f"({candidates[-1]['seconds']:.1f} s{part})")

        if parallel is not None:
            parallel.close()
            if not main:
                return None  # rank 0 scores, chooses and writes the run
        # the baseline is scored on validation beside the candidates (forgeml.train.choice)
        base = baseline_on_validation(cfg, data, candidates, lambda n: trained_raw(n, candidates, data))
        say(f"  baseline {base['name']}: val {task.primary_metric} = {fmt(base['val'].get(task.primary_metric))}")
        chosen, choice = choose(task, candidates, base, say)
        task.finalize(cfg, data, task.outputs(chosen["raw"]["val"]), say)
        result = finish(cfg, run_dir, data, chosen, candidates, tracker, say, baseline=base, choice=choice)
    except BaseException as exc:
        tracker.end("FAILED")
        if getattr(exc, "nothing_trained", False) and not resume:  # e.g. a time limit too short: leave no half run
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        if native is not None:
            native.restore_original_limits()
        if parallel is not None:
            parallel.close()
    tracker.end()
    return result


def _own_run(cfg: Config, run_dir: Path, data, say: Say) -> RunResult:
    """The run folder, config.yaml and tracking around a family's own ``train_run``."""
    from forgeml.tracking import Tracker

    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    artifacts.write_text(run_dir / "config.yaml", cfg.to_yaml())
    say(f"[bold]config[/] (model: {'auto -> ' + ' vs '.join(data.candidates) if cfg.model.name == 'auto' else cfg.model.name}):\n"
        + cfg.to_yaml())
    tracker = Tracker(cfg.tracking.uri, cfg.runs_dir, cfg.tracking.experiment, cfg.name)
    try:
        tracker.params(cfg.model_dump(mode="json") | {"task": data.task.name})
        from forgeml.train.loop import fit

        result = RunResult(run_dir, *data.task.train_run(cfg, run_dir, data, tracker, say, fit))
    except BaseException:
        tracker.end("FAILED")
        raise
    tracker.end()
    return result


class TimeBudget:
    """train.time_limit: the candidates train in order until it is spent; a learner with a ``time_limit`` parameter
    (the ensemble) gets what is left."""

    def __init__(self, seconds: Optional[float]):
        self.seconds, self.start = seconds, time.perf_counter()

    def left(self) -> Optional[float]:
        return None if self.seconds is None else self.seconds - (time.perf_counter() - self.start)

    def spent(self) -> bool:
        return self.seconds is not None and self.left() <= 0

    def params(self, params):
        if self.seconds is None or "time_limit" not in type(params).model_fields:
            return params
        return params.model_copy(update={"time_limit": max(self.left(), 1e-3)})


def epoch_hook(tracker, name: str, on_epoch: Optional[Callable[[str, dict], None]]) -> Callable[[dict], None]:
    """What the loop calls after each epoch of learner ``name``: the tracker, then the caller's ``on_epoch``."""

    def hook(logs: dict) -> None:
        tracker.epoch(logs, f"{name}.")
        if on_epoch is not None:
            on_epoch(name, logs)

    return hook


def check_parallel(cfg: Config, parallel) -> None:
    """What data-parallel training cannot do, refused on every rank before anything is written."""
    from forgeml.errors import ConfigError

    if cfg.train.privacy is not None:
        raise ConfigError("data-parallel training (--nproc) does not work with train.privacy (DP-SGD); train in one process")
    parallel.check(cfg.train.batch_size)


def _refuse_before_writing(cfg: Config, data: Prepared, parallel=None) -> None:
    """Settings the torch loop would only reject once training starts (an unusable train.device, DP-SGD without the
    privacy extra or with a budget no noise reaches) are refused before the run folder is written: a half-written
    folder blocks the retry."""
    if not any("torch" in get_model(c).tags for c in data.candidates):
        if parallel is not None:
            raise RunError(f"data-parallel training (--nproc) trains networks; {', '.join(data.candidates)} "
                           "trains in one process: drop --nproc, or choose a network with --model")
        return
    from forgeml.precision import resolve_device
    from forgeml.train.engines import engine_for

    resolve_device(cfg.train.device)
    if cfg.train.privacy is not None:
        from forgeml.errors import require

        require("opacus", "privacy", "train.privacy (DP-SGD)")
        engine_for(cfg.train, len(next(iter(data.enc["train"].values()))), len(data.candidates)).check()


def trained_raw(learner_name: str, candidates: list[dict], data: Prepared) -> Optional[dict]:
    """A candidate's raw outputs on val and test when the baseline was trained as one (LightGBM), else None."""
    same = next((c for c in candidates if c["model"] == learner_name), None)
    return {s: candidate_raw(same, s, data) for s in ("val", "test")} if same is not None else None


def candidate_raw(candidate: dict, split: str, data: Prepared) -> np.ndarray:
    """A candidate's raw outputs on a split, computed once (LightGBM prediction is slow on big tables)."""
    if split not in candidate["raw"]:
        candidate["raw"][split] = raw_outputs(candidate["estimator"], candidate["model"], data.enc[split], data.task)
    return candidate["raw"][split]


def finish(cfg: Config, run_dir: Path, data: Prepared, chosen: dict, candidates: list[dict], tracker, say: Say,
            extra: Optional[dict] = None, baseline: Optional[dict] = None, choice: Optional[dict] = None) -> RunResult:
    """Test metrics, baseline, plots, weights, manifest, metrics.json and report; ``extra`` adds top-level keys to
    metrics.json (e.g. "federated", which the report renders). ``baseline``: already trained for the choice
    (forgeml.train.choice), else trained here; ``choice``: the choice's record (metrics.json and the manifest)."""
    from forgeml.evaluate import plots
    from forgeml.evaluate.report import rerender

    task, name, est = data.task, chosen["model"], chosen["estimator"]
    artifacts.check_run_folder(run_dir, cfg.to_yaml())
    outputs = {s: task.outputs(candidate_raw(chosen, s, data)) for s in ("val", "test")}
    # validation scored again: finalize may have changed the decision rule (a threshold tuned on validation)
    metrics: dict[str, Any] = {"val": task.metrics(data.y["val"], outputs["val"]),
                               "test": task.metrics(data.y["test"], outputs["test"])}
    metrics["primary_metric"] = task.primary_metric
    metrics["summary_keys"] = list(task.summary_keys)
    metrics["model"] = name
    if choice:  # why this model was kept, with the baseline beside it (forgeml.train.choice)
        metrics["choice"] = choice
    metrics.update(extra or {})

    # the family's baseline on the same split (one already trained as a candidate is reused, not trained twice)
    if baseline is None:
        baseline = baseline_on_validation(cfg, data, candidates, lambda n: trained_raw(n, candidates, data))
    kind, base_raw = baseline["name"], baseline["raw"]
    base_task = task.baseline_task(data, base_raw["val"])
    metrics["baseline"] = {"name": kind, **{s: base_task.metrics(data.y[s], base_task.outputs(base_raw[s])) for s in ("val", "test")}}
    keep = lambda m: {k: m.get(k) for k in task.summary_keys}  # noqa: E731
    metrics["candidates"] = [{"model": c["model"], "val": keep(c["val"]), "seconds": round(c["seconds"], 3)} for c in candidates]
    if chosen.get("privacy"):  # DP-SGD: the (epsilon, delta) actually spent; the baseline is not private
        metrics["privacy"] = chosen["privacy"]
    fit_info = chosen["fit"]
    if fit_info is not None:
        metrics["history"] = fit_info.history
        metrics["training"] = {"epochs_run": len(fit_info.history), "best_epoch": fit_info.best_epoch, "monitor": fit_info.monitor,
                               "best_score": fit_info.best_score, "stopped_early": fit_info.stopped_early,
                               "seconds": round(fit_info.seconds, 3), "device": fit_info.device, "precision": fit_info.precision,
                               "threads": fit_info.threads, "parameters": fit_info.parameters,
                               "trainable_parameters": fit_info.trainable,
                               **({"processes": fit_info.processes, "parallel": fit_info.parallel} if fit_info.parallel else {})}

    # plots
    pdir = run_dir / "plots"
    made = []
    if fit_info is not None and fit_info.history:
        made.append(plots.learning_curves(fit_info.history, fit_info.monitor, pdir / "learning_curves.png", fit_info.best_epoch))
    made += task.plots(data, outputs["test"], pdir)
    metrics["plots"] = [path.stem for path in made]  # the report shows these, in this order

    # weights and manifest
    artifacts.check_run_folder(run_dir, cfg.to_yaml())
    learner = get_model(name)
    if "torch" not in learner.tags:
        learner.save(est, run_dir)
        weights = {"kind": name, "file": learner.file}
    else:
        artifacts.save_tensors(run_dir / WEIGHTS, est.state_dict(), metadata={"model": name})
        weights = {"kind": "torch", "file": WEIGHTS}
    manifest = {
        "format_version": artifacts.FORMAT_VERSION,
        "name": cfg.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": task.name,
        "target": {"name": data.target, **task.state},
        "features": [f.to_json() for f in data.features],
        "preprocessing": data.preprocessor.state,
        "model": {"name": name, "params": chosen["params"].model_dump(mode="json"), **weights,
                  "input_shapes": data.preprocessor.input_shapes(),
                  "tags": sorted(learner.tags), "accepts": sorted(learner.accepts)},
        "data": {"source": cfg.data.source, **artifacts.source_path(cfg.data.source), "rows": data.rows,
                 **({"preparation": data.preparation} if data.preparation else {})},
        "metrics": {"test": keep(metrics["test"]), "baseline_test": keep(metrics["baseline"]["test"])},
        **({"choice": choice} if choice else {}),
        "tracking": {"uri": getattr(tracker, "uri", None), "run_id": getattr(tracker, "run_id", None)},
        "versions": artifacts.library_versions(),
    }
    manifest["signature"] = signature(manifest)
    if metrics.get("privacy"):  # dp_fixed: the layers DP training replaced (BatchNorm -> GroupNorm) that load repeats
        manifest["privacy"] = metrics["privacy"]
        manifest["model"]["dp_fixed"] = [r for r in metrics["privacy"]["replaced_layers"] if r["rebuild"]]
    artifacts.write_json(run_dir / "metrics.json", metrics)
    artifacts.write_json(run_dir / artifacts.MANIFEST, manifest)
    rerender(run_dir)
    tracker.final(metrics, run_dir, model_files=[weights["file"]])
    return RunResult(run_dir, metrics, manifest)
