"""Commands that train from a config: quickstart, train, cv, federate. Each builds a config dict from --config, the
flags and --set (in that order; see forgeml.cli.overrides), calls forgeml.api and prints the result."""
from __future__ import annotations

from typing import Annotated

import typer

from forgeml.cli import options as opt
from forgeml.cli.overrides import (apply_sets, base_config, data_section, default_name, source_label, task_section,
                                   value_at)
from forgeml.cli.printing import cv_table, print_federated, print_result, stdout
from forgeml.errors import ConfigError

NEEDS_DATA = "give the data with --data PATH (or data.source in --config, or --set data.source=PATH)"


def quickstart(runs_dir: opt.RunsDir = None, tracking_uri: opt.TrackingUri = None, quiet: opt.Quiet = False):
    """Train, evaluate and report a CNN on the bundled digits images, end to end."""
    from forgeml import api

    print_result(api.quickstart(runs_dir=runs_dir or "runs", quiet=quiet, tracking_uri=tracking_uri))


def train(
    data: opt.Data = None,
    target: opt.Target = None,
    sep: opt.Sep = None,
    encoding: opt.Encoding = None,
    config: opt.Config = None,
    sets: opt.Set = None,
    task: opt.Task = None,
    label: opt.Label = None,
    k: opt.K = None,
    conditional: opt.Conditional = False,
    positive: opt.Positive = None,
    contamination: opt.Contamination = None,
    target_fpr: opt.TargetFpr = None,
    horizon: opt.Horizon = None,
    id_col: opt.IdCol = None,
    model: opt.Model = None,
    presets: opt.Presets = None,
    time_limit: opt.TimeLimit = None,
    name: opt.Name = None,
    epochs: opt.Epochs = None,
    batch_size: opt.BatchSize = None,
    lr: opt.Lr = None,
    seed: opt.Seed = None,
    precision: opt.Precision = None,
    device: opt.Device = None,
    balance: opt.Balance = None,
    threshold: opt.Threshold = None,
    group_col: opt.GroupCol = None,
    time_col: opt.TimeCol = None,
    dedup: opt.Dedup = False,
    impute: opt.Impute = None,
    missing_indicator: opt.MissingIndicator = False,
    scale: opt.Scale = None,
    outliers: opt.Outliers = None,
    runs_dir: opt.RunsDir = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue an interrupted run from its last checkpoint")] = False,
    overwrite: opt.Overwrite = False,
    epsilon: opt.Epsilon = None,
    delta: opt.Delta = None,
    max_grad_norm: opt.MaxGradNorm = None,
    tracking_uri: opt.TrackingUri = None,
    quiet: opt.Quiet = False,
    nproc: Annotated[int, typer.Option("--nproc", min=1, help="train the network in N processes on this machine "
                                       "(data-parallel through torchrun: gloo on CPUs, NCCL on GPUs; train.parallel "
                                       "chooses ddp or fsdp)")] = 1,
):
    """Train a model on a data file; prints the config it chose, the test metrics and the report's path."""
    from forgeml import api
    from forgeml.config import merge

    base = base_config(config, model)
    if presets is not None:
        if base.get("model", {}).get("name", "auto") != "auto":
            raise ConfigError(f"--presets chooses what model auto trains; this run trains {base['model']['name']}: "
                              "drop --model (or the config's model.name) or --presets")
        base = {**base, "model": {**base.get("model", {}), "name": "auto", "presets": presets}}
    overrides = {
        "name": name or (None if base.get("name") else default_name(data)),
        "task": task_section(base, task, label=label, k=k, positive=positive, contamination=contamination,
                             target_fpr=target_fpr, horizon=horizon, id_col=id_col,
                             conditional=conditional or None),
        "runs_dir": runs_dir,
        "data": data_section(data, target, balance, threshold, group_col, time_col, dedup, impute, missing_indicator,
                             scale, outliers, sep, encoding),
        "train": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "precision": precision, "device": device,
                  "time_limit": time_limit, "privacy": {"epsilon": epsilon, "delta": delta, "max_grad_norm": max_grad_norm}},
        "tracking": {"uri": tracking_uri},
    }
    cfg_dict = apply_sets(merge(base, overrides), sets)
    if (delta is not None or max_grad_norm is not None) and value_at(cfg_dict, "train.privacy.epsilon") is None:
        raise ConfigError("--delta and --max-grad-norm set up differential privacy; give its budget with --epsilon E")
    if resume and not cfg_dict.get("name"):
        raise ConfigError("--resume needs the name of the run to continue: forgeml train --name NAME --resume")
    if resume and "data" not in base and data is None:
        cfg_dict.setdefault("data", {"source": "(from the run)"})
    if not value_at(cfg_dict, "data.source"):
        raise ConfigError(NEEDS_DATA)
    if nproc > 1:
        raise SystemExit(train_in_processes(nproc, cfg_dict, source_label(config, sets), resume, overwrite, quiet))
    result = api.train(cfg_dict, resume=resume, overwrite=overwrite, quiet=quiet, source=source_label(config, sets))
    if result is not None:  # None: a data-parallel worker other than rank 0 (rank 0 prints)
        print_result(result)


def train_in_processes(nproc: int, cfg_dict: dict, source: str, resume: bool, overwrite: bool, quiet: bool) -> int:
    """--nproc N: the config checked here (its errors name the user's files), then N workers (forgeml.train.launch)."""
    from forgeml.config import build_config
    from forgeml.train.launch import check_nproc, launch

    cfg = build_config(cfg_dict, source)
    check_nproc(nproc, cfg.train.batch_size, cfg.train.device)
    flags = [flag for flag, on in (("--resume", resume), ("--overwrite", overwrite), ("--quiet", quiet)) if on]
    return launch(nproc, cfg_dict, flags)


def cv(
    data: opt.Data = None,
    target: opt.Target = None,
    sep: opt.Sep = None,
    encoding: opt.Encoding = None,
    folds: Annotated[int, typer.Option("--folds", "-k", help="number of folds (each is the test split once)")] = 5,
    config: opt.Config = None,
    sets: opt.Set = None,
    task: opt.Task = None,
    label: opt.Label = None,
    k: opt.K = None,
    positive: opt.Positive = None,
    contamination: opt.Contamination = None,
    target_fpr: opt.TargetFpr = None,
    model: opt.Model = None,
    name: opt.Name = None,
    epochs: opt.Epochs = None,
    batch_size: opt.BatchSize = None,
    lr: opt.Lr = None,
    seed: opt.Seed = None,
    precision: opt.Precision = None,
    device: opt.Device = None,
    balance: opt.Balance = None,
    threshold: opt.Threshold = None,
    group_col: opt.GroupCol = None,
    time_col: opt.TimeCol = None,
    dedup: opt.Dedup = False,
    impute: opt.Impute = None,
    missing_indicator: opt.MissingIndicator = False,
    scale: opt.Scale = None,
    outliers: opt.Outliers = None,
    runs_dir: opt.RunsDir = None,
    overwrite: opt.Overwrite = False,
    tracking_uri: opt.TrackingUri = None,
    quiet: opt.Quiet = False,
):
    """K-fold cross-validation: trains one run per fold and reports each metric's mean and standard deviation
    (stratified folds for classification; group folds with --group-col; expanding time folds with --time-col).
    The folds are runs/<name>/fold-1 ... fold-K (default name <data>-cv)."""
    from pathlib import Path

    from forgeml import api
    from forgeml.config import merge

    base = base_config(config, model)
    default = default_name(data)
    cfg_dict = apply_sets(merge(base, {
        "name": name or (None if base.get("name") else default and f"{default}-cv"),
        "task": task_section(base, task, label=label, k=k, positive=positive, contamination=contamination,
                             target_fpr=target_fpr),
        "runs_dir": runs_dir, "tracking": {"uri": tracking_uri},
        "train": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "precision": precision, "device": device},
        "data": data_section(data, target, balance, threshold, group_col, time_col, dedup, impute, missing_indicator,
                             scale, outliers, sep, encoding),
    }), sets)
    if not value_at(cfg_dict, "data.source"):
        raise ConfigError(NEEDS_DATA)
    result = api.cross_validate(cfg_dict, folds=folds, overwrite=overwrite, quiet=quiet, source=source_label(config, sets))
    stdout().print(cv_table(result))
    cv_dir = Path(result["per_fold"][0]["run"]).parent
    stdout().print(f"folds:  {cv_dir}/fold-1 ... fold-{result['folds']}\nsummary: {cv_dir / 'cv.json'}, plot: {cv_dir / 'cv.png'}")


def federate(
    data: opt.Data = None,
    target: opt.Target = None,
    clients: Annotated[int, typer.Option("--clients", help="simulated clients the training split is divided among")] = 5,
    rounds: Annotated[int, typer.Option(
        "--rounds", help="federated rounds (server sends weights, clients train, server averages)")] = 10,
    partition: Annotated[str, typer.Option("--partition", help="iid (balanced) | dirichlet (label skew set by --alpha)")] = "iid",
    alpha: Annotated[float, typer.Option("--alpha", help="Dirichlet concentration: 0.1 very skewed, 100 nearly IID")] = 0.5,
    strategy: Annotated[str, typer.Option("--strategy", help="fedavg | fedprox")] = "fedavg",
    mu: Annotated[float, typer.Option(
        "--mu", help="FedProx proximal weight: adds mu/2 * ||w - w_global||^2 to each client's loss")] = 0.1,
    local_epochs: Annotated[int, typer.Option(
        "--local-epochs", help="passes over its own rows each client makes per round")] = 1,
    epsilon: opt.Epsilon = None,
    delta: opt.Delta = None,
    max_grad_norm: opt.MaxGradNorm = None,
    engine: Annotated[str, typer.Option(
        "--engine", help="local: clients run in this process, one after another | "
                         "simulation: Flower's Ray-based Simulation Engine (needs ray)")] = "local",
    central: Annotated[bool, typer.Option(
        "--central/--no-central", help="also train the model centrally with the same budget (rounds x local epochs) "
                                       "for the comparison")] = True,
    config: opt.Config = None,
    sets: opt.Set = None,
    task: opt.Task = None,
    model: opt.Model = None,
    name: opt.Name = None,
    batch_size: opt.BatchSize = None,
    lr: opt.Lr = None,
    seed: opt.Seed = None,
    device: opt.Device = None,
    runs_dir: opt.RunsDir = None,
    overwrite: opt.Overwrite = False,
    tracking_uri: opt.TrackingUri = None,
    quiet: opt.Quiet = False,
):
    """Federated learning with Flower: split the training data across simulated clients, train, compare with central.
    --batch-size and --lr apply on each client; with --epsilon each client runs DP-SGD and may spend that budget over
    all rounds. Neural models only (not lightgbm). The run is runs/<name>/ (default name <data>-federated)."""
    from forgeml import api
    from forgeml.config import merge

    base = base_config(config, model)
    default = default_name(data)
    overrides = {
        "name": name or (None if base.get("name") else (f"{default}-federated" if default else None)),
        "task": task_section(base, task),
        "runs_dir": runs_dir,
        "data": {"source": data, "target": target},
        "train": {"batch_size": batch_size, "lr": lr, "seed": seed, "device": device,
                  "privacy": {"epsilon": epsilon, "delta": delta, "max_grad_norm": max_grad_norm}},
        "tracking": {"uri": tracking_uri},
    }
    cfg_dict = apply_sets(merge(base, overrides), sets)
    if (delta is not None or max_grad_norm is not None) and value_at(cfg_dict, "train.privacy.epsilon") is None:
        raise ConfigError("--delta and --max-grad-norm set up DP-SGD on every client; give its budget with --epsilon E")
    if not value_at(cfg_dict, "data.source"):
        raise ConfigError(NEEDS_DATA)
    result = api.federate(cfg_dict, overwrite=overwrite, quiet=quiet, source=source_label(config, sets),
                          clients=clients, rounds=rounds, partition=partition, alpha=alpha, strategy=strategy, mu=mu,
                          local_epochs=local_epochs, engine=engine, central=central)
    print_federated(result)
