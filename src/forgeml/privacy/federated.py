"""Federated learning with Flower: N simulated clients on this machine, each training on its own slice of the data.

The pieces, top to bottom (one module each):

- the data are read, split and encoded exactly as ``forgeml train`` does (``forgeml.train.pipeline.prepare_for_training``); the training split is
  partitioned across clients (``partition.py``: IID or Dirichlet over labels); validation and test stay with the server;
- each client is a Flower ``ClientApp`` (``federated_client.py``): it loads the global weights, trains ``local_epochs``
  on its own rows with forgeml's training loop (``forgeml.train.loop.fit``; FedProx adds mu/2 * ||w - w_global||^2
  to the task's loss, DP-SGD is the loop's engine), and replies with its weights and row count;
- the server is a Flower strategy (``FedAvg`` or ``FedProx`` from ``flwr.serverapp.strategy``, ``federated_strategy.py``):
  it sends the global weights, averages the replies weighted by rows, and evaluates the new global model on the
  validation split every round (``federated_rounds.py``); the round with the best validation score is kept, as
  ``train`` keeps its best epoch;
- messages travel over one of two engines: ``local`` (default) hands each Flower ``Message`` to the ``ClientApp`` in
  this process, one client after another (a ``Grid`` of our own, ``LocalGrid``); ``simulation`` is Flower's Simulation
  Engine (``flwr.simulation.run_simulation``, Ray actors), for when Ray is installed;
- the same model is trained centrally on the pooled training split with the same number of passes over the data
  (rounds x local epochs) for the comparison; the run folder is written by ``forgeml.train.pipeline.finish`` like a
  trained run, so predict / evaluate / export / serve work on it, with a rounds plot and a report section
  (``federated_report.py``).

Simplification (documented in docs/federated.md): the preprocessing (scaling, category levels, vocabularies, image
normalization) is fitted on the pooled training split, as ``forgeml train`` fits it. Only model training is federated.
"""
from __future__ import annotations

import time
from dataclasses import asdict

from forgeml.errors import ConfigError, RunError, require
from forgeml.evaluate.metrics import score_text
from forgeml.privacy.federated_client import ClientData
from forgeml.privacy.federated_report import (
    PLOT,
    plot_rounds,
    privacy_report,
    report_section,
)
from forgeml.privacy.federated_rounds import run_rounds
from forgeml.privacy.federated_strategy import (
    ENGINES,
    STRATEGIES,
    FederatedOptions,
    import_flower,
)

__all__ = ["ENGINES", "STRATEGIES", "FederatedOptions", "federate"]


def federate(cfg, opts: FederatedOptions, *, overwrite: bool = False, quiet: bool = False, say=None):
    """Federated training, evaluation, comparison with centralized training, and a run folder like ``train``'s."""
    import shutil

    import torch

    from forgeml import artifacts
    from forgeml.data import balance
    from forgeml.evaluate.report import rerender, write_section
    from forgeml.models import get_model
    from forgeml.privacy.partition import describe, label_groups, partition
    from forgeml.tracking import Tracker
    from forgeml.train import pipeline
    from forgeml.train.loop import predict_raw

    say = say or pipeline.stderr_say(quiet)
    opts.check()
    from forgeml.tasks import TASKS

    if cfg.task.name != "auto" and "target" not in TASKS.get(cfg.task.name).tags:
        raise ConfigError(f"forgeml federate works on {' and '.join(TASKS.tagged('target'))} so far, not on "
                          f"{cfg.task.name}")
    if cfg.model.name != "auto" and "torch" not in get_model(cfg.model.name).tags:
        raise ConfigError(f"{cfg.model.name} cannot be federated here: it has no network weights to average (boosted trees); "
                          "use --model mlp (tables), cnn (images) or text")
    if cfg.train.privacy is not None:
        require("opacus", "privacy", "forgeml federate --epsilon (DP-SGD on every client)")
    if opts.engine == "simulation":
        require("ray", "cluster", "forgeml federate --engine simulation (Flower's Ray-based Simulation Engine)")
    import_flower(opts.flower_log_level)
    run_dir = cfg.run_dir
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise RunError(f"{run_dir} already exists; use --overwrite to replace it, or --name for a new run")

    if cfg.model.name == "auto":  # the networks model auto trains (presets fast): the tree ensemble has no weights to average
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"presets": "fast"})})
    data = pipeline.prepare_for_training(cfg, say)
    name = next((c for c in data.candidates if "torch" in get_model(c).tags), None)
    if name is None:
        raise ConfigError("no federatable model for these features (lightgbm cannot be federated); use --model mlp")
    task = data.task
    classification = "labels" in task.tags
    privacy = cfg.train.privacy
    if privacy is not None and privacy.delta is None:  # one delta for every client and the central model
        from forgeml.privacy.dp import default_delta

        privacy = privacy.model_copy(update={"delta": default_delta(len(data.y["train"]))})
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"privacy": privacy})})
    budget = opts.rounds * opts.local_epochs  # passes over the training rows, federated or central
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": budget})})  # as config.yaml records it
    labels = label_groups(data.y["train"], classification)
    parts = partition(labels, opts.clients, opts.partition, opts.alpha, seed=cfg.data.split.seed)
    stats = describe(parts, labels, task.labels if classification else None)
    stats.update({"method": opts.partition, "alpha": opts.alpha if opts.partition == "dirichlet" else None,
                  "seed": cfg.data.split.seed, "by": "label" if classification else "target quintile"})

    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    artifacts.write_text(run_dir / "config.yaml", cfg.to_yaml())
    alpha = f", alpha {opts.alpha}" if opts.partition == "dirichlet" else ""
    skew = f", mean label skew {stats['mean_label_skew']:.2f}" if classification else ""
    mu = f" (mu {opts.mu})" if opts.strategy == "fedprox" else ""
    say(f"[bold]federated[/]: {opts.clients} clients ({opts.partition}{alpha}; rows {min(stats['rows'])}-{max(stats['rows'])}"
        f"{skew}), {opts.rounds} rounds x {opts.local_epochs} local epoch(s), {opts.strategy}{mu}, model {name}, "
        f"engine {opts.engine}")
    if privacy is not None:
        say(f"privacy: DP-SGD on every client, budget epsilon {privacy.epsilon:g} (delta {privacy.delta:.2g}) per client "
            f"for all {opts.rounds * opts.local_epochs} passes over its rows")

    params = pipeline.params_for(cfg, name)
    shapes = data.preprocessor.input_shapes()
    monitor = cfg.train.early_stopping.monitor if cfg.train.early_stopping else "val_loss"
    train_loss = None
    if classification:
        train_loss = balance.training_loss(cfg.data.balance, data.y["train"], task.out_dim)  # class weights / focal
    tune_threshold = classification and cfg.data.balance.threshold != "none"
    client_data = ClientData(name, params, shapes, task, cfg.train,
                             [({k: v[idx] for k, v in data.enc["train"].items()}, data.y["train"][idx]) for idx in parts],
                             cfg.train.seed, threads=1 if opts.engine == "simulation" else cfg.train.threads,
                             planned_epochs=budget, dp_fixed=privacy is not None, loss=train_loss)

    tracker = Tracker(cfg.tracking.uri, cfg.runs_dir, cfg.tracking.experiment, cfg.name)
    try:
        tracker.params(cfg.model_dump(mode="json") | {"task": task.name, "federated": asdict(opts), "model_used": name})
        torch.manual_seed(cfg.train.seed)
        server_model = get_model(name).build(params, shapes, task.out_dim)
        replaced = []
        if privacy is not None:  # the layers DP-SGD needs (BatchNorm -> GroupNorm, ...), or a ConfigError naming them
            from forgeml.privacy.dp import describe_replacements, make_compatible

            server_model, replaced = make_compatible(server_model, data.enc["train"], data.y["train"], train_loss or task.loss)
            if replaced:
                say(f"privacy: layers replaced to make the model DP-compatible: {describe_replacements(replaced)}")
        fed = run_rounds(opts, client_data, server_model, task, data, monitor, tracker, quiet)
        server_model.load_state_dict(fed["best_state"])
        server_model.eval()
        val_raw = predict_raw(server_model, data.enc["val"])
        val_metrics = task.metrics(data.y["val"], task.outputs(val_raw))
        say(f"  federated {name}: val {task.primary_metric} = {score_text(val_metrics.get(task.primary_metric))} "
            f"(kept round {fed['kept_round']} of {opts.rounds}, {fed['seconds']:.1f} s)")

        central = None
        if opts.central:
            central = _train_central(cfg, data, name, params, shapes, monitor, budget, train_loss, tune_threshold, quiet)
            say(f"  centralized {name}: val {task.primary_metric} = {score_text(central['val'].get(task.primary_metric))} "
                f"({budget} epochs, {central['seconds']:.1f} s)")

        summary = {
            "options": {k: v for k, v in asdict(opts).items() if k != "flower_log_level"},
            "model": name, "engine": opts.engine, "monitor": monitor, "kept_round": fed["kept_round"],
            "seconds": round(fed["seconds"], 3), "rounds": fed["rounds"], "partition": stats, "central": central,
            "clients": fed["clients"],
            "preprocessing": "fitted on the pooled training split (as forgeml train does); only training is federated",
        }
        plot_rounds(summary, task, run_dir / "plots" / PLOT)
        chosen = {"model": name, "params": params, "estimator": server_model, "fit": None, "raw": {"val": val_raw},
                  "val": val_metrics, "seconds": fed["seconds"],
                  "privacy": privacy_report(privacy, fed["clients"], replaced) if privacy is not None else None}
        if privacy is not None:
            say(f"privacy: clients spent epsilon {chosen['privacy']['epsilon']:.3f} at most (budget {privacy.epsilon:g}, "
                f"delta {privacy.delta:.2g}); noise multipliers {min(c['noise_multiplier'] for c in fed['clients']):.3f}-"
                f"{max(c['noise_multiplier'] for c in fed['clients']):.3f}")
        if tune_threshold:  # as forgeml train does: P(positive) >= threshold, tuned on validation, kept in the manifest
            task.finalize(cfg, data, task.outputs(val_raw), say)
        result = pipeline.finish(cfg, run_dir, data, chosen, [chosen], tracker, say, extra={"federated": summary})
        write_section(run_dir, "55-federated", report_section(run_dir, result.metrics))
        rerender(run_dir)
        result.manifest["federated"] = {**summary["options"], "kept_round": fed["kept_round"],
                                        "central_test": central["test"] if central else None}
        artifacts.write_json(run_dir / artifacts.MANIFEST, result.manifest)
    except BaseException:
        tracker.end("FAILED")
        raise
    tracker.end()
    return result


def _train_central(cfg, data, name: str, params, shapes, monitor: str, budget: int, train_loss, tune_threshold: bool,
                   quiet: bool) -> dict:
    """The centralized twin: the same network trained by ``forgeml train``'s loop on the pooled training split for
    ``budget`` epochs (with DP-SGD on the pooled rows when the clients were private), keeping its best epoch."""
    import torch

    from forgeml.config import EarlyStopping
    from forgeml.data import balance
    from forgeml.models import get_model
    from forgeml.progress import TrainProgress
    from forgeml.run import summary as run_summary
    from forgeml.train.loop import fit, predict_raw

    task = data.task
    torch.manual_seed(cfg.train.seed)
    model = get_model(name).build(params, shapes, task.out_dim)
    train_cfg = cfg.train.model_copy(update={"epochs": budget, "early_stopping": EarlyStopping(monitor=monitor, patience=budget)})
    tic = time.perf_counter()
    dp = None
    if cfg.train.privacy is not None:  # the same budget, spent by DP-SGD on the pooled rows
        from forgeml.privacy.dp import DPSGD

        dp = DPSGD(train_cfg, len(data.y["train"]))
        model = dp.prepare(model, data.enc["train"], data.y["train"], train_loss or task.loss)
        train_cfg = dp.train_config
    info = fit(model, task, data.enc["train"], data.y["train"], data.enc["val"], data.y["val"], train_cfg,
               progress=TrainProgress(f"central {name}", quiet), loss=train_loss, privacy=dp)
    if dp is not None:
        dp.close()
    raw = {s: predict_raw(model, data.enc[s]) for s in ("val", "test")}
    if tune_threshold:  # the centralized model gets its own threshold, tuned on validation like the federated one
        tuned = balance.tune_threshold(data.y["val"], task.outputs(raw["val"])["proba"][:, 1],
                                       cfg.data.balance.threshold, cfg.data.balance.target_recall)
        task.state["threshold"] = tuned["threshold"]
    out = {s: task.outputs(r) for s, r in raw.items()}
    task.state.pop("threshold", None)
    return {"model": name, "epochs": budget, "best_epoch": info.best_epoch, "monitor": info.monitor,
            "seconds": round(time.perf_counter() - tic, 3),
            "val": run_summary(task.name, task.metrics(data.y["val"], out["val"])),
            "test": run_summary(task.name, task.metrics(data.y["test"], out["test"])),
            "history": info.history, **({"privacy": dp.report()} if dp is not None else {})}


