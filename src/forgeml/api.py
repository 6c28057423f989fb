"""The Python API, a thin facade (the CLI is a thin layer over it): train, evaluate, predict, load, export, compress,
explain, federate, cross-validate, tune, quickstart. The work happens in forgeml.train.pipeline (training), forgeml.run (the
run artifact) and the capability packages; nothing below this module imports it."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Union

import pandas as pd

from forgeml import artifacts  # noqa: F401  (forgeml.api.artifacts: run folders for scripts)
from forgeml.config import Config, build_config
from forgeml.errors import DataError
from forgeml.features import of_column
from forgeml.export.run import export  # noqa: F401
from forgeml.run import LoadedModel, RunResult, load, read_inputs, run_config, seen_in_training, summary, test_rows, write_table  # noqa: F401
from forgeml.tasks import family_of
from forgeml.tasks.supervised import Prepared, Splits, split_data  # noqa: F401
from forgeml.train.pipeline import prepare_for_training as prepare  # noqa: F401
from forgeml.train.cv import cross_validate  # noqa: F401
from forgeml.train.pipeline import stderr_say, train  # noqa: F401
from forgeml.tune import tune  # noqa: F401  (hyper-parameter search; optuna is imported when a search runs)

Say = Callable[[str], None]


def predict(run: Union[str, Path], inputs, output: Optional[Union[str, Path]] = None, *, sep: Optional[str] = None,
            encoding: Optional[str] = None) -> pd.DataFrame:
    """Predictions for ``inputs``; a CSV/TSV file is read with ``sep``/``encoding`` when given, else as training read
    its data (forgeml.run.reading_options)."""
    model = load(run)
    frame = model.frame(inputs, sep, encoding)
    result = model.predict(frame)
    image = of_column(model.manifest["features"], "files")
    if image and image in frame and isinstance(frame[image].iloc[0], str):
        result.insert(0, image, frame[image].to_numpy())
    if output:
        write_table(result, output)
    return result


def evaluate(run: Union[str, Path], data: Optional[str] = None, output: Optional[Union[str, Path]] = None, *,
             sep: Optional[str] = None, encoding: Optional[str] = None) -> dict:
    """Metrics of a trained run on labelled data (default: the run's own test split, recomputed from its config);
    ``sep``/``encoding`` read a CSV/TSV ``data`` file (default: as training read its data)."""
    if data is None and (sep is not None or encoding is not None):
        from forgeml.errors import ConfigError

        raise ConfigError("--sep and --encoding say how to read the --data file; without --data evaluate scores the "
                          "run's own test split, read as training read it")
    model = load(run)
    if hasattr(model, "evaluate_run"):  # a run that scores itself: forecasting backtests, generation draws images
        metrics = model.evaluate_run(data, sep, encoding)
        if output:
            artifacts.write_output(output, artifacts.json_text(metrics).encode())
        return metrics
    target = model.manifest["target"]["name"]
    if target is None and not model.task.evaluates_without_target:
        raise DataError(f"{model.run_dir} was trained without a label column; evaluate needs one (train with --label)")
    if data is None:
        cfg = run_config(model.run_dir)
        df = family_of(cfg).split_rows(cfg)["test"]
        where = f"test split of {cfg.data.source}"
    else:
        df = model.frame(str(data), sep, encoding)
        where = str(data)
        seen = seen_in_training(model.manifest, model.run_dir, data)
    if target is not None and target not in df.columns and not model.task.evaluates_without_target:
        raise DataError(f"evaluation data {where} has no target column {target!r}; columns: {list(df.columns)}")
    if target is not None and target in df.columns:
        df = df[df[target].notna()].reset_index(drop=True)
    y = model.task.truth(df, target, model.preprocessor)
    metrics = model.task.metrics(y, model.task.outputs(model.raw(df)))
    metrics["data"] = where
    metrics["task"] = model.task.name
    if data is not None and seen:
        metrics["warning"] = (f"{data} is the data this run was trained on: its training and validation rows were seen "
                              "in training, so these scores are optimistic; evaluate without --data to score the "
                              "held-out test split")
    if output:
        artifacts.write_output(output, artifacts.json_text(metrics).encode())
    return metrics


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
    return run_federated(cfg, fed, overwrite=overwrite, quiet=quiet, say=say or stderr_say(quiet))


def explain(run: Union[str, Path], inputs=None, method: Optional[str] = None, out: Optional[Union[str, Path]] = None, *,
            quiet: bool = False, say: Optional[Say] = None, **options) -> dict:
    """Explain a trained run (Grad-CAM, Integrated Gradients, LIME, permutation importance; see forgeml.explain.run).
    ``inputs``: None (the run's test split), a file/folder path, a dict or list of dicts (rows), or inline JSON."""
    from forgeml.explain.run import ExplainOptions, explain as run_explain

    return run_explain(run, inputs, out, ExplainOptions(method=method, **options), say or stderr_say(quiet), quiet=quiet)


def compress(run: Union[str, Path], *, quiet: bool = False, say: Optional[Say] = None, **options) -> dict:
    """Quantize / prune / distill a trained run and measure every variant (see forgeml.compress.run.CompressOptions)."""
    from forgeml.compress.run import CompressOptions, compress as run_compress

    return run_compress(run, CompressOptions(**options), say or stderr_say(quiet), quiet=quiet)


def generate(run: Union[str, Path], n: int = 64, *, label=None, seed: Optional[int] = None,
             output: Union[str, Path] = "samples", overwrite: bool = False) -> dict:
    """Draw ``n`` images from a generation run (of class ``label`` for a conditional model) into the folder
    ``output``: one PNG per image and grid.png (forgeml.tasks.generation_run)."""
    from forgeml.errors import RunError
    from forgeml.tasks import task_tags

    run_dir = artifacts.run_dir_of(run)
    manifest = artifacts.read_manifest(run_dir)
    if "samples" not in task_tags(manifest["task"]):
        raise RunError(f"{run_dir} is a {manifest['task']} run; forgeml generate draws images from generation runs "
                       "(forgeml train --task generation --data IMAGES)")
    return load(run_dir).write(output, n, label, seed, overwrite)


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
