"""The tune command: hyper-parameter search with Optuna (forgeml.tune), then the best config trained as the run."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from forgeml.cli import options as opt
from forgeml.cli.experiments import NEEDS_DATA
from forgeml.cli.overrides import apply_sets, base_config, data_section, default_name, source_label, task_section, value_at
from forgeml.errors import ConfigError


def tune(
    data: opt.Data = None,
    target: opt.Target = None,
    sep: opt.Sep = None,
    encoding: opt.Encoding = None,
    trials: Annotated[Optional[int], typer.Option(
        "--trials", help="trials in the study in all (default tune.trials, 20); a resumed study runs the missing ones")] = None,
    timeout: Annotated[Optional[float], typer.Option(
        "--timeout", help="stop starting trials after this many seconds")] = None,
    storage: Annotated[Optional[str], typer.Option(
        "--storage", help="Optuna storage URL: sqlite:///PATH or postgresql://user:pw@host/db (several machines); "
                          "default runs/<name>/study.db (a journal file with --workers)")] = None,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", help="processes on this machine that run trials at once (default 1)")] = None,
    pruner: Annotated[Optional[str], typer.Option(
        "--pruner", help="median | hyperband | none: stop poor trials early by their per-epoch validation score")] = None,
    config: opt.Config = None,
    sets: opt.Set = None,
    task: opt.Task = None,
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
    runs_dir: opt.RunsDir = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="start the study afresh (deletes runs/<name> and the study)")] = False,
    tracking_uri: opt.TrackingUri = None,
    quiet: opt.Quiet = False,
):
    """Hyper-parameter search with Optuna (TPE, pruning): searches tune.space from --config (else the model's own
    default space) on the validation score, then trains the best trial's config as runs/<name> (default
    <data>-tune) with the trials in runs/<name>/trials and tune.json. Running it again resumes the study."""
    from forgeml.cli.printing import print_result, stdout
    from forgeml.config import merge
    from forgeml.tune import tune as run_tune

    base = base_config(config, model)
    default = default_name(data)
    cfg_dict = apply_sets(merge(base, {
        "name": name or (None if base.get("name") else default and f"{default}-tune"),
        "task": task_section(base, task),
        "runs_dir": runs_dir, "tracking": {"uri": tracking_uri},
        "train": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "precision": precision, "device": device},
        "data": data_section(data, target, balance, threshold, group_col, time_col, sep=sep, encoding=encoding),
        "tune": {"trials": trials, "timeout": timeout, "storage": storage, "workers": workers, "pruner": pruner},
    }), sets)
    if not value_at(cfg_dict, "data.source"):
        raise ConfigError(NEEDS_DATA)
    result = run_tune(cfg_dict, overwrite=overwrite, quiet=quiet, source=source_label(config, sets))
    print_result(result.run)
    s = result.summary
    counts = ", ".join(f"{n} {state}" for state, n in s["counts"].items())
    default = s["default"]
    as_given = (f"; the config as given (trial {default['trial']}): {default['value']:.4f}"
                if default and default["value"] is not None else "")
    stdout().print(f"tuning: {len(s['trials'])} trials ({counts}) in {s['seconds']:.0f} s; best validation {s['metric']} "
                   f"{s['best']['value']:.4f} (trial {s['best']['trial']}){as_given}\n"
                   f"trials: {result.run_dir / 'trials'}\nsummary: {result.run_dir / 'tune.json'}")
