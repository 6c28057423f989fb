"""The Python API (the CLI is a thin layer over it): train, evaluate, predict, load, quickstart."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import pandas as pd

from forgeml import artifacts
from forgeml.config import MODEL_PARAMS, Config, build_config
from forgeml.errors import ConfigError, DataError, RunError

Say = Callable[[str], None]
WEIGHTS = "model.safetensors"


def _stderr_say(quiet: bool) -> Say:
    if quiet:
        return lambda msg: None
    from rich.console import Console

    console = Console(stderr=True)
    return lambda msg: console.print(msg)


# --------------------------------------------------------------------------------------------- data preparation
@dataclass
class Splits:
    target: str
    task: Any
    features: list
    candidates: list[str]
    raw: dict[str, pd.DataFrame]  # train / val / test rows as read
    y: dict[str, np.ndarray]  # encoded targets per split
    preparation: dict = field(default_factory=dict)  # what data.clean removed and data.balance changed


@dataclass
class Prepared(Splits):
    preprocessor: Any = None
    enc: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # model inputs per split
    rows: dict[str, int] = field(default_factory=dict)  # rows per split after cleaning, before resampling


def split_data(cfg: Config) -> Splits:
    """Read, check, de-duplicate, type and split the data (deterministic for a config: evaluate replays it)."""
    from forgeml.data.clean import duplicate_rows
    from forgeml.data.schema import check_target, check_task, infer_features, infer_task
    from forgeml.data.sources import read_source
    from forgeml.data.split import parse_times, split_indices
    from forgeml.models import check_supports, resolve_auto
    from forgeml.tasks import fit_task

    df, implied_target = read_source(cfg.data.source)
    target = cfg.data.target or implied_target
    df = check_target(df, target)
    split = cfg.data.split
    for key in ("group_col", "time_col"):
        col = getattr(split, key)
        if col and col not in df.columns:
            raise DataError(f"split.{key} {col!r} is not a column of the data; columns: {list(df.columns)}")
        if col and col == target:
            raise DataError(f"split.{key} {col!r} is the target; choose another column")
    preparation = {}
    if cfg.data.clean.deduplicate:
        dup = duplicate_rows(df)
        if dup.any():
            df = df.loc[~dup].reset_index(drop=True)
        preparation["duplicates"] = int(dup.sum())
    task_name = cfg.task if cfg.task != "auto" else infer_task(df[target])
    check_task(df[target], task_name)
    # the group/time column orders or groups rows; as an input it would be an ID (memorized) or a leak
    split_cols = {c: "ignore" for c in (split.group_col, split.time_col) if c}
    features = infer_features(df, target, {**split_cols, **cfg.data.features})
    candidates = resolve_auto({f.type for f in features}) if cfg.model.name == "auto" else [cfg.model.name]
    for name in candidates:
        check_supports(name, features)

    task = fit_task(task_name, df[target])
    y_all = task.encode(df[target])
    groups = df[split.group_col].astype(str).to_numpy() if split.group_col else None
    times = parse_times(df[split.time_col]) if split.time_col else None
    idx = dict(zip(("train", "val", "test"), split_indices(y_all, task_name == "classification", split, groups, times)))
    raw = {s: df.iloc[i].reset_index(drop=True) for s, i in idx.items()}
    return Splits(target, task, features, candidates, raw, {s: y_all[i] for s, i in idx.items()}, preparation)


def prepare(cfg: Config, say: Say = lambda m: None) -> Prepared:
    """Split, clean the training split, fit the preprocessing on it only, encode every split, then rebalance the
    training inputs (data.balance)."""
    from forgeml.data import balance
    from forgeml.data.clean import quantile_bounds, training_rows_to_drop
    from forgeml.data.preprocess import Preprocessor, numeric_frame
    from forgeml.models import get_model

    splits = split_data(cfg)
    clean = cfg.data.clean
    numeric = [f.name for f in splits.features if f.type == "numeric"]
    categorical = [f.name for f in splits.features if f.type == "categorical"]
    train_rows = splits.raw["train"]
    values = numeric_frame(train_rows, numeric) if numeric else np.zeros((len(train_rows), 0), np.float32)
    bounds = quantile_bounds(values, clean.outliers.quantiles) if numeric and clean.outliers.method != "none" else None
    drops = training_rows_to_drop(train_rows, values, categorical, clean, bounds)
    if drops:
        keep = ~np.logical_or.reduce(list(drops.values()))
        if not keep.any():
            raise DataError(f"data.clean drops every training row ({', '.join(drops)}); relax data.clean.missing/outliers")
        splits.raw["train"], splits.y["train"] = train_rows.loc[keep].reset_index(drop=True), splits.y["train"][keep]
        splits.preparation["training_rows_dropped"] = {why: int(m.sum()) for why, m in drops.items()}

    torch_models = [c for c in splits.candidates if c != "lightgbm"]
    tokenizer = get_model(torch_models[0]).tokenizer_for(_params_for(cfg, torch_models[0])) if torch_models else "words"
    pre = Preprocessor.fit(splits.raw["train"], splits.features, cfg.data, text_tokenizer=tokenizer, clip_bounds=bounds)
    enc = {s: pre.transform(rows) for s, rows in splits.raw.items()}
    n = {s: len(rows) for s, rows in splits.raw.items()}
    feats = splits.features
    say(f"[dim]{sum(n.values())} rows -> train {n['train']} / val {n['val']} / test {n['test']}; task {splits.task.name}; "
        f"features: {', '.join(f'{f.name}:{f.type}' for f in feats[:12])}{' ...' if len(feats) > 12 else ''}[/]")
    if splits.preparation:
        say(f"[dim]cleaning: {_cleaning_line(splits.preparation)}[/]")

    bal = cfg.data.balance
    balance.check(bal, splits.task, set(enc["train"]))
    if bal.method in ("oversample", "undersample", "smote"):
        before = np.bincount(splits.y["train"], minlength=splits.task.out_dim)
        enc["train"], splits.y["train"], index = balance.resample(enc["train"], splits.y["train"], bal, splits.task.labels)
        if index is not None:  # the raw rows follow (the text baseline reads them)
            splits.raw["train"] = splits.raw["train"].iloc[index].reset_index(drop=True)
        after = np.bincount(splits.y["train"], minlength=splits.task.out_dim)
        splits.preparation["balance"] = {"method": bal.method, "train_class_counts_before": before.tolist(),
                                      "train_class_counts_after": after.tolist()}
        say(f"[dim]balance ({bal.method}): training class counts {before.tolist()} -> {after.tolist()}[/]")
    return Prepared(**vars(splits), preprocessor=pre, enc=enc, rows=n)


def _cleaning_line(prep: dict) -> str:
    parts = []
    if prep.get("duplicates"):
        parts.append(f"{prep['duplicates']} duplicate rows removed before splitting")
    for why, n in prep.get("training_rows_dropped", {}).items():
        parts.append(f"{n} training rows dropped ({why})")
    return "; ".join(parts) or "nothing to remove"


# --------------------------------------------------------------------------------------------- training
@dataclass
class RunResult:
    run_dir: Path
    metrics: dict
    manifest: dict = field(repr=False, default_factory=dict)


def run_config(run_dir: Path) -> Config:
    """The config a run was trained with (its config.yaml)."""
    from forgeml.config import load_config

    return build_config(load_config(run_dir / "config.yaml"), str(run_dir / "config.yaml"))


def _params_for(cfg: Config, name: str):
    return cfg.model if cfg.model.name == name else MODEL_PARAMS[name]()


def train(
    config: Union[Config, dict, None] = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    say: Optional[Say] = None,
    source: str = "options",
    **options,
) -> RunResult:
    """Train, evaluate, report and track one run. ``options`` are config keys, e.g. data={'source': ...}."""
    import torch

    from forgeml.models import get_model
    from forgeml.models import gbdt
    from forgeml.progress import TrainProgress
    from forgeml.tracking import Tracker
    from forgeml.train import checkpoint
    from forgeml.train.loop import fit, predict_raw
    from forgeml.data import balance
    from forgeml.data.augment import batch_augmenter

    say = say or _stderr_say(quiet)
    cfg = config if isinstance(config, Config) else build_config({**(config or {}), **options}, source)
    run_dir = cfg.run_dir
    if resume:
        if not (run_dir / "config.yaml").is_file() or not any((run_dir / "checkpoints").glob("*/last.json")):
            raise RunError(f"--resume: no checkpoint found in {run_dir / 'checkpoints'}; train without --resume to start fresh")
        cfg = run_config(run_dir)
        say(f"resuming [bold]{run_dir}[/] from its last checkpoint")
    elif run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise RunError(f"{run_dir} already exists; use --resume to continue it, --overwrite to replace it, or --name for a new run")

    data = prepare(cfg, say)  # data problems surface before anything is written or replaced
    if cfg.train.privacy is not None and "lightgbm" in data.candidates:  # model: auto
        data.candidates = [c for c in data.candidates if c != "lightgbm"]
        say(f"privacy: model auto trains only {', '.join(data.candidates)} (LightGBM cannot be trained with DP-SGD)")
    if not resume and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    artifacts.write_text(run_dir / "config.yaml", cfg.to_yaml())
    task = data.task
    say(f"[bold]config[/] ({'model: auto -> ' + ' vs '.join(data.candidates) if cfg.model.name == 'auto' else 'model: ' + cfg.model.name}):\n"
        + cfg.model_copy(update={"task": task.name}).to_yaml())

    tracker = Tracker(cfg.tracking.uri, cfg.runs_dir, cfg.tracking.experiment, cfg.name)
    try:
        tracker.params(cfg.model_dump(mode="json") | {"task": task.name})
        bal = cfg.data.balance
        train_loss = balance.training_loss(bal, data.y["train"], task.out_dim) if task.name == "classification" else None
        augment = batch_augmenter(cfg.data.augment, task.name)
        candidates = []
        for name in data.candidates:
            params = _params_for(cfg, name)
            tic = time.perf_counter()
            dp = None
            if name == "lightgbm":
                weights = None
                if bal.method in ("class_weights", "focal"):  # trees have no focal loss here: they get class weights
                    weights = balance.class_weights(data.y["train"], task.out_dim)[data.y["train"]]
                booster = gbdt.fit(params, task, data.enc["train"], data.y["train"], data.enc["val"], data.y["val"],
                                   cfg.train.seed, cfg.train.threads, sample_weight=weights)
                model, fit_info = booster, None
                val_raw = gbdt.raw_outputs(booster, data.enc["val"], task)
            else:
                torch.manual_seed(cfg.train.seed)
                model = get_model(name).build(params, data.preprocessor.input_shapes(), task.out_dim)
                if cfg.train.privacy is not None:  # DP-SGD (forgeml.privacy.dp): DP-compatible layers, then fit with it
                    from forgeml.privacy.dp import DPSGD

                    dp = DPSGD(cfg.train, len(data.y["train"]))
                    model = dp.prepare(model, data.enc["train"], data.y["train"], train_loss or task.loss)
                    for note in dp.notes():
                        say(f"privacy: {note}")
                ckpt = run_dir / "checkpoints" / name
                ckpt.mkdir(parents=True, exist_ok=True)
                fit_info = fit(model, task, data.enc["train"], data.y["train"], data.enc["val"], data.y["val"],
                               dp.train_config if dp else cfg.train,
                               checkpoint_dir=ckpt, resume=resume and checkpoint.exists(ckpt),
                               progress=TrainProgress(name, quiet), on_epoch=lambda logs, n=name: tracker.epoch(logs, f"{n}."),
                               loss=train_loss, augment=augment, privacy=dp)
                if dp is not None:
                    dp.close()
                    say(f"privacy: {dp.summary()}")
                val_raw = predict_raw(model, data.enc["val"], device=next(model.parameters()).device)
            val_metrics = task.metrics(data.y["val"], task.outputs(val_raw))
            candidates.append({"model": name, "params": params, "estimator": model, "fit": fit_info, "raw": {"val": val_raw},
                               "val": val_metrics, "seconds": time.perf_counter() - tic,
                               "privacy": dp.report() if dp is not None else None})
            score = val_metrics[task.primary_metric]
            say(f"  {name}: val {task.primary_metric} = {'n/a' if score is None else f'{score:.4f}'} ({candidates[-1]['seconds']:.1f} s)")

        chosen = _choose(candidates, task.primary_metric)
        if len(candidates) > 1:
            say(f"[bold]kept {chosen['model']}[/] (better validation {task.primary_metric})")
        if bal.threshold != "none":
            _set_threshold(task, bal, data.y["val"], task.outputs(chosen["raw"]["val"])["proba"], say)
        result = _finish(cfg, run_dir, data, chosen, candidates, tracker, say)
    except BaseException:
        tracker.end("FAILED")
        raise
    tracker.end()
    return result


def _set_threshold(task, bal, y_val: np.ndarray, proba_val: np.ndarray, say: Say) -> None:
    """Tune the binary decision threshold on validation; it joins the task's state (manifest), so predict, evaluate
    and serve decide with it."""
    from forgeml.data import balance

    tuned = balance.tune_threshold(y_val, proba_val[:, 1], bal.threshold, bal.target_recall)
    task.state["threshold"] = tuned["threshold"]
    task.state["threshold_tuning"] = tuned
    say(f"decision threshold P({task.labels[1]}) >= {tuned['threshold']:.4f}, tuned on validation for {tuned['tuned_for']} "
        f"(val precision {tuned['val_precision']:.3f}, recall {tuned['val_recall']:.3f})")


def _choose(candidates: list[dict], metric: str) -> dict:
    from forgeml.tasks import better

    best = candidates[0]
    for c in candidates[1:]:
        if c["val"][metric] is not None and (best["val"][metric] is None or better(metric, c["val"][metric], best["val"][metric])):
            best = c
    return best


def _raw_outputs(estimator, name: str, arrays: dict, task) -> np.ndarray:
    if name == "lightgbm":
        from forgeml.models import gbdt

        return gbdt.raw_outputs(estimator, arrays, task)
    from forgeml.train.loop import predict_raw

    return predict_raw(estimator, arrays, device=next(estimator.parameters()).device)


def _candidate_raw(candidate: dict, split: str, data: Prepared) -> np.ndarray:
    """A candidate's raw outputs on a split, computed once (LightGBM prediction is slow on big tables)."""
    if split not in candidate["raw"]:
        candidate["raw"][split] = _raw_outputs(candidate["estimator"], candidate["model"], data.enc[split], data.task)
    return candidate["raw"][split]


def _finish(cfg: Config, run_dir: Path, data: Prepared, chosen: dict, candidates: list[dict], tracker, say: Say,
            extra: Optional[dict] = None) -> RunResult:
    """Test metrics, baseline, plots, weights, manifest, metrics.json and report; ``extra`` adds top-level keys to
    metrics.json (e.g. "federated", which the report renders)."""
    from forgeml.evaluate import plots
    from forgeml.evaluate.baseline import kind_for, run_baseline
    from forgeml.evaluate.report import render
    from forgeml.models import gbdt

    task, name, est = data.task, chosen["model"], chosen["estimator"]
    outputs = {s: task.outputs(_candidate_raw(chosen, s, data)) for s in ("val", "test")}
    metrics: dict[str, Any] = {"val": chosen["val"], "test": task.metrics(data.y["test"], outputs["test"])}
    metrics["primary_metric"] = task.primary_metric
    metrics["model"] = name
    metrics.update(extra or {})

    # baseline on the same split (LightGBM already trained as a candidate is reused, not trained twice)
    kind = kind_for({f.type for f in data.features})
    lgb_candidate = next((c for c in candidates if c["model"] == "lightgbm"), None)
    if kind == "lightgbm" and lgb_candidate is not None:
        base_raw = {s: _candidate_raw(lgb_candidate, s, data) for s in ("val", "test")}
    else:
        text_cols = data.preprocessor.state.get("text", {}).get("columns", [])
        base_raw = run_baseline(kind, task, data.enc, data.y, data.raw, text_cols, cfg.train.seed, cfg.train.threads)
    metrics["baseline"] = {"name": kind, **{s: task.metrics(data.y[s], task.outputs(base_raw[s])) for s in ("val", "test")}}
    metrics["candidates"] = [{"model": c["model"], "val": _summary(task.name, c["val"]), "seconds": round(c["seconds"], 3)} for c in candidates]
    if chosen.get("privacy"):  # DP-SGD: the (epsilon, delta) actually spent; the baseline is not private
        metrics["privacy"] = chosen["privacy"]
    fit_info = chosen["fit"]
    if fit_info is not None:
        metrics["history"] = fit_info.history
        metrics["training"] = {"epochs_run": len(fit_info.history), "best_epoch": fit_info.best_epoch, "monitor": fit_info.monitor,
                               "best_score": fit_info.best_score, "stopped_early": fit_info.stopped_early,
                               "seconds": round(fit_info.seconds, 3), "device": fit_info.device, "precision": fit_info.precision}

    # plots
    pdir = run_dir / "plots"
    made = []
    if fit_info is not None and fit_info.history:
        made.append(plots.learning_curves(fit_info.history, fit_info.monitor, pdir / "learning_curves.png", fit_info.best_epoch))
    if task.name == "classification":
        made.append(plots.confusion(metrics["test"]["confusion_matrix"], task.labels, pdir / "confusion_matrix.png"))
        made += plots.roc_pr(data.y["test"], outputs["test"]["proba"], task.labels, pdir / "roc.png", pdir / "pr.png")
    else:
        made.append(plots.regression_fit(task.decode(data.y["test"]), task.decode(outputs["test"]["pred"]), pdir / "regression.png"))

    # weights and manifest
    if name == "lightgbm":
        gbdt.save(est, run_dir)
        weights = {"kind": "lightgbm", "file": gbdt.MODEL_FILE}
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
                  "input_shapes": data.preprocessor.input_shapes()},
        "data": {"source": cfg.data.source, "rows": data.rows,
                 **({"preparation": data.preparation} if data.preparation else {})},
        "metrics": {"test": _summary(task.name, metrics["test"]), "baseline_test": _summary(task.name, metrics["baseline"]["test"])},
        "tracking": {"uri": getattr(tracker, "uri", None), "run_id": getattr(tracker, "run_id", None)},
        "versions": artifacts.library_versions(),
    }
    if metrics.get("privacy"):  # dp_fixed: the layers DP training replaced (BatchNorm -> GroupNorm) that load repeats
        manifest["privacy"] = metrics["privacy"]
        manifest["model"]["dp_fixed"] = [r for r in metrics["privacy"]["replaced_layers"] if r["rebuild"]]
    artifacts.write_json(run_dir / "metrics.json", metrics)
    artifacts.write_json(run_dir / artifacts.MANIFEST, manifest)
    artifacts.write_text(run_dir / "report.html", render(run_dir, manifest, metrics, cfg.to_yaml(), made))
    tracker.final(metrics, run_dir)
    return RunResult(run_dir, metrics, manifest)


def _summary(task_name: str, m: dict) -> dict:
    from forgeml.evaluate.metrics import SUMMARY_KEYS

    return {k: m.get(k) for k in SUMMARY_KEYS[task_name]}


# --------------------------------------------------------------------------------------------- loading, predicting
class LoadedModel:
    """A trained run, ready to predict: ``forgeml.load("runs/x").predict(df)``."""

    def __init__(self, run: Union[str, Path]):
        from forgeml.data.preprocess import Preprocessor
        from forgeml.tasks import make_task

        self.run_dir = artifacts.run_dir_of(run)
        self.manifest = artifacts.read_manifest(self.run_dir)
        self.preprocessor = Preprocessor(self.manifest["preprocessing"])
        target = {k: v for k, v in self.manifest["target"].items() if k != "name"}
        self.task = make_task(self.manifest["task"], target)
        m = self.manifest["model"]
        self.model_name = m["name"]
        if not (self.run_dir / m["file"]).is_file():
            raise RunError(f"{self.run_dir} has no trained model ({m['file']} is missing); train it to the end first "
                           "(forgeml train ..., or --resume an interrupted run)")
        if m["kind"] == "lightgbm":
            from forgeml.models import gbdt

            self.estimator = gbdt.load(self.run_dir)
        else:
            from forgeml.models import get_model

            params = MODEL_PARAMS[m["name"]].model_validate(m["params"])
            build = get_model(m["name"]).build
            kwargs = {"pretrained": False} if m["name"] in ("minilm", "text") else {}  # weights come from the run
            self.estimator = build(params, m["input_shapes"], self.task.out_dim, **kwargs)
            if m.get("dp_fixed"):  # trained with DP-SGD after BatchNorm -> GroupNorm etc.: the same layers again
                from forgeml.privacy.dp import rebuild

                self.estimator = rebuild(self.estimator, m["dp_fixed"])
            self.estimator.load_state_dict(artifacts.load_tensors(self.run_dir / m["file"]))
            self.estimator.eval()

    @property
    def features(self) -> list[str]:
        return [f["name"] for f in self.manifest["features"]]

    @property
    def labels(self) -> Optional[list]:
        return self.manifest["target"].get("labels")

    def _frame(self, data) -> pd.DataFrame:
        if isinstance(data, pd.DataFrame):
            return data
        if isinstance(data, dict):
            return pd.DataFrame([data])
        if isinstance(data, (str, Path)):
            return read_inputs(data, self.manifest)
        if isinstance(data, (list, tuple)):
            if data and isinstance(data[0], dict):
                return pd.DataFrame(list(data))
            image = next((f["name"] for f in self.manifest["features"] if f["type"] == "image"), None)
            if image:
                return pd.DataFrame({image: list(data)})
        raise DataError("predict takes a DataFrame, a dict or list of dicts (one per row), a file path, or a list of image paths/arrays")

    def raw(self, df: pd.DataFrame) -> np.ndarray:
        return _raw_outputs(self.estimator, self.model_name, self.preprocessor.transform(df), self.task)

    def predict(self, data) -> pd.DataFrame:
        """Predictions (and class probabilities as proba_<label> columns) for each input row."""
        df = self._frame(data)
        if len(df) == 0:
            raise DataError("no rows to predict")
        out = self.task.outputs(self.raw(df))
        # keep the caller's index so `df["pred"] = model.predict(df)["prediction"]` aligns row by row
        result = pd.DataFrame({"prediction": self.task.decode(out["pred"])}, index=df.index)
        if "proba" in out:
            for i, label in enumerate(self.labels):
                result[f"proba_{label}"] = out["proba"][:, i]
        return result


def load(run: Union[str, Path]) -> LoadedModel:
    return LoadedModel(run)


def read_inputs(source: Union[str, Path], manifest: dict) -> pd.DataFrame:
    """Rows to predict from a table file or an image folder (all images inside, recursively)."""
    from forgeml.data.sources import list_images, read_source, read_table

    path = Path(source)
    if str(source).startswith("bundled:"):
        return read_source(str(source))[0]
    if not path.exists():
        raise DataError(f"input not found: {source}")
    if path.is_dir():
        image = next((f["name"] for f in manifest["features"] if f["type"] == "image"), None)
        if image is None:
            raise DataError(f"{path} is a folder, but this model takes {[f['name'] for f in manifest['features']]} from a table")
        paths = list_images(path)
        if not paths:
            raise DataError(f"no images found in {path}")
        return pd.DataFrame({image: [str(p) for p in paths]})
    from forgeml.data.sources import anchor_image_paths

    return anchor_image_paths(read_table(path), path.parent)


def write_table(df: pd.DataFrame, path: Union[str, Path]) -> None:
    import io

    path = Path(path)
    suffix = path.suffix.lower()
    buf = io.BytesIO()
    if suffix in (".csv", ""):
        df.to_csv(buf, index=False)
    elif suffix in (".parquet", ".pq"):
        df.to_parquet(buf, index=False)
    elif suffix in (".jsonl", ".ndjson"):
        df.to_json(buf, orient="records", lines=True)
    else:
        raise DataError(f"unsupported output format {suffix}; use .csv, .parquet or .jsonl")
    artifacts.atomic_write_bytes(path, buf.getvalue())


def predict(run: Union[str, Path], inputs, output: Optional[Union[str, Path]] = None) -> pd.DataFrame:
    model = load(run)
    frame = model._frame(inputs)
    result = model.predict(frame)
    image = next((f["name"] for f in model.manifest["features"] if f["type"] == "image"), None)
    if image and image in frame and isinstance(frame[image].iloc[0], str):
        result.insert(0, image, frame[image].to_numpy())
    if output:
        write_table(result, output)
    return result


def evaluate(run: Union[str, Path], data: Optional[str] = None, output: Optional[Union[str, Path]] = None) -> dict:
    """Metrics of a trained run on labelled data (default: the run's own test split, recomputed from its config)."""
    model = load(run)
    target = model.manifest["target"]["name"]
    if data is None:
        cfg = run_config(model.run_dir)
        df = split_data(cfg).raw["test"]
        where = f"test split of {cfg.data.source}"
    else:
        df = read_inputs(data, model.manifest)
        where = str(data)
    if target not in df.columns:
        raise DataError(f"evaluation data {where} has no target column {target!r}; columns: {list(df.columns)}")
    df = df[df[target].notna()].reset_index(drop=True)
    y = model.task.encode(df[target])
    metrics = model.task.metrics(y, model.task.outputs(model.raw(df)))
    metrics["data"] = where
    if output:
        artifacts.write_json(Path(output), metrics)
    return metrics


# --------------------------------------------------------------------------------------------- export
def test_rows(model: LoadedModel, limit: Optional[int] = None) -> Optional[pd.DataFrame]:
    """The run's own test split (None if its data can no longer be read)."""
    try:
        rows = split_data(run_config(model.run_dir)).raw["test"]
    except DataError:
        return None
    return rows if limit is None else rows.iloc[:limit]


def export(run: Union[str, Path], format: str = "onnx", output: Optional[Union[str, Path]] = None, check_rows: int = 256) -> dict:
    """Write the run's model as ONNX (runs with onnxruntime alone) and record its inputs in the manifest."""
    from forgeml.errors import ConfigError
    from forgeml.export.onnx import export_run

    if format != "onnx":
        raise ConfigError(f"unknown export format {format!r}; forgeml exports onnx")
    model = load(run)
    path = Path(output) if output else model.run_dir / "model.onnx"
    info = export_run(model, path, test_rows(model, check_rows))
    manifest = artifacts.read_manifest(model.run_dir)
    manifest.setdefault("export", {})["onnx"] = info
    artifacts.write_json(model.run_dir / artifacts.MANIFEST, manifest)
    return info


def federate(config: Union[Config, dict, None] = None, *, overwrite: bool = False, quiet: bool = False,
             say: Optional[Say] = None, source: str = "options", **options) -> RunResult:
    """Federated training with Flower, compared with centralized training on the same data. Options named like the
    fields of ``forgeml.privacy.federated.FederatedOptions`` (clients, rounds, partition, alpha, strategy, mu,
    local_epochs, epsilon, delta, engine, central) set the federation; the others are config keys, as for ``train``."""
    from dataclasses import fields

    from forgeml.privacy.federated import FederatedOptions, federate as run_federated

    names = {f.name for f in fields(FederatedOptions)}
    fed = FederatedOptions(**{k: options.pop(k) for k in list(options) if k in names})
    fed.check()
    cfg = config if isinstance(config, Config) else build_config({**(config or {}), **options}, source)
    return run_federated(cfg, fed, overwrite=overwrite, quiet=quiet, say=say or _stderr_say(quiet))


def explain(run: Union[str, Path], inputs=None, method: Optional[str] = None, out: Optional[Union[str, Path]] = None, *,
            quiet: bool = False, say: Optional[Say] = None, **options) -> dict:
    """Explain a trained run (Grad-CAM, Integrated Gradients, LIME, permutation importance; see forgeml.explain.run).
    ``inputs``: None (the run's test split), a file/folder path, a dict or list of dicts (rows), or inline JSON."""
    from forgeml.explain.run import ExplainOptions, explain as run_explain

    return run_explain(run, inputs, out, ExplainOptions(method=method, **options), say or _stderr_say(quiet), quiet=quiet)


def compress(run: Union[str, Path], *, quiet: bool = False, say: Optional[Say] = None, **options) -> dict:
    """Quantize / prune / distill a trained run and measure every variant (see forgeml.compress.run.CompressOptions)."""
    from forgeml.compress.run import CompressOptions, compress as run_compress

    return run_compress(run, CompressOptions(**options), say or _stderr_say(quiet), quiet=quiet)


# --------------------------------------------------------------------------------------------- quickstart
QUICKSTART = {
    "name": "quickstart",
    "data": {"source": "bundled:digits", "split": {"val": 0.1, "test": 0.2, "seed": 0}},
    "model": {"name": "cnn", "channels": [64, 128], "dropout": 0.2},
    "train": {"epochs": 30, "batch_size": 64, "lr": 2e-3, "weight_decay": 5e-4, "schedule": "cosine", "warmup": 0.1,
              "early_stopping": {"monitor": "val_loss", "patience": 10}},
}


def quickstart(runs_dir: str = "runs", quiet: bool = False, tracking_uri: Optional[str] = None) -> RunResult:
    cfg = build_config({**QUICKSTART, "runs_dir": runs_dir, "tracking": {"uri": tracking_uri}})
    return train(cfg, overwrite=True, quiet=quiet)


# --------------------------------------------------------------------------------------------- cross-validation
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
    from forgeml.evaluate.metrics import SUMMARY_KEYS
    from forgeml.evaluate import plots
    from forgeml.tracking import default_uri

    say = say or _stderr_say(quiet)
    cfg = config if isinstance(config, Config) else build_config({**(config or {}), **options}, source)
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")
    cv_dir = cfg.run_dir
    if cv_dir.exists() and any(cv_dir.iterdir()) and not overwrite:
        raise RunError(f"{cv_dir} already exists; use --overwrite to replace it, or --name for a new one")
    if cv_dir.exists():
        shutil.rmtree(cv_dir)
    tracking = cfg.tracking.model_copy(update={"uri": cfg.tracking.uri or default_uri(cfg.runs_dir)})
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
                         "test": _summary(result.manifest["task"], m["test"]),
                         "baseline_test": _summary(result.manifest["task"], m["baseline"]["test"]),
                         **({"per_class": m["test"]["per_class"]} if "per_class" in m["test"] else {})})
    task_name = result.manifest["task"]
    keys = [k for k in SUMMARY_KEYS[task_name] if all(f["test"].get(k) is not None for f in per_fold)]

    def spread(which: str) -> dict:
        return {k: {"mean": float(np.mean(v := [f[which][k] for f in per_fold])), "std": float(np.std(v, ddof=1))} for k in keys}

    summary = {"folds": folds, "task": task_name, "metric_keys": keys, "std": "sample standard deviation (ddof=1) across folds",
               "split": {"group_col": cfg.data.split.group_col, "time_col": cfg.data.split.time_col,
                         "stratified": task_name == "classification" and cfg.data.split.stratify and not cfg.data.split.group_col},
               "model": spread("test"), "baseline": {"name": result.metrics["baseline"]["name"], **spread("baseline_test")},
               "per_fold": per_fold}
    plots.cross_validation(per_fold, keys, cv_dir / "cv.png")
    artifacts.write_json(cv_dir / "cv.json", summary)
    return summary
