"""Federated learning with Flower: N simulated clients on this machine, each training on its own slice of the data.

The pieces, top to bottom:

- the data are read, split and encoded exactly as ``forgeml train`` does (``forgeml.train.pipeline.prepare_for_training``); the training split is
  partitioned across clients (``partition.py``: IID or Dirichlet over labels); validation and test stay with the server;
- each client is a Flower ``ClientApp``: it loads the global weights, trains ``local_epochs`` on its own rows with
  ``local_train`` (the task's loss, our optimizer; FedProx adds mu/2 * ||w - w_global||^2), and replies with its weights
  and row count;
- the server is a Flower strategy (``FedAvg`` or ``FedProx`` from ``flwr.serverapp.strategy``): it sends the global
  weights, averages the replies weighted by rows, and evaluates the new global model on the validation split every
  round (``evaluate_fn``); the round with the best validation score is kept, as ``train`` keeps its best epoch;
- messages travel over one of two engines: ``local`` (default) hands each Flower ``Message`` to the ``ClientApp`` in
  this process, one client after another (a ``Grid`` of our own, ``LocalGrid``); ``simulation`` is Flower's Simulation
  Engine (``flwr.simulation.run_simulation``, Ray actors), for when Ray is installed;
- the same model is trained centrally on the pooled training split with the same number of passes over the data
  (rounds x local epochs) for the comparison; the run folder is written by ``forgeml.train.pipeline.finish`` like a trained run, so
  predict / evaluate / export / serve work on it.

Simplification (documented in docs/federated.md): the preprocessing (scaling, category levels, vocabularies, image
normalization) is fitted on the pooled training split, as ``forgeml train`` fits it. Only model training is federated.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

import numpy as np

from forgeml.errors import ConfigError, RunError, require

STRATEGIES = ("fedavg", "fedprox")
ENGINES = ("local", "simulation")
PLOT = "federated_rounds.png"
RUN_ID, SERVER_NODE_ID, FIRST_CLIENT_NODE_ID = 1, 1, 1001  # LocalGrid: one run, the server is node 1 (as in Flower)


@dataclass
class FederatedOptions:
    """What ``forgeml federate`` adds to a training config (validated before any data are read)."""

    clients: int = 5
    rounds: int = 10
    partition: str = "iid"  # iid | dirichlet
    alpha: float = 0.5  # Dirichlet concentration: small = each client sees few classes
    strategy: str = "fedavg"  # fedavg | fedprox
    mu: float = 0.1  # FedProx proximal weight
    local_epochs: int = 1
    engine: str = "local"  # local | simulation
    central: bool = True  # also train centrally with the same budget, for the comparison
    flower_log_level: str = "ERROR"

    def check(self) -> None:
        from forgeml.privacy.partition import PARTITIONS

        if not isinstance(self.clients, int) or self.clients < 1:
            raise ConfigError(f"--clients must be at least 1, got {self.clients}")
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise ConfigError(f"--rounds must be at least 1, got {self.rounds}")
        if not isinstance(self.local_epochs, int) or self.local_epochs < 1:
            raise ConfigError(f"--local-epochs must be at least 1, got {self.local_epochs}")
        if self.partition not in PARTITIONS:
            raise ConfigError(f"unknown --partition {self.partition!r}; choose one of: {', '.join(PARTITIONS)}")
        if not self.alpha > 0 or not math.isfinite(self.alpha):
            raise ConfigError(f"--alpha must be a number > 0 (the Dirichlet concentration; 0.1 = very skewed, "
                              f"100 = nearly IID), got {self.alpha}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown --strategy {self.strategy!r}; choose one of: {', '.join(STRATEGIES)}")
        if not self.mu >= 0 or not math.isfinite(self.mu):
            raise ConfigError(f"--mu must be >= 0 (FedProx's proximal weight), got {self.mu}")
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown --engine {self.engine!r}; choose one of: {', '.join(ENGINES)}")


# --------------------------------------------------------------------------------------------- Flower glue
def _flower():
    """Import Flower quietly: no telemetry, only errors in the log (its INFO lines would bury our progress)."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    flwr = require("flwr", "federated", "forgeml federate")
    require("flwr.serverapp.strategy", "federated", "forgeml federate (Flower 1.41 or newer: the Message API)")
    return flwr


def _set_flower_logging(level: str) -> None:
    logging.getLogger("flwr").setLevel(getattr(logging, level.upper(), logging.ERROR))


def _make_strategy(opts: FederatedOptions):
    """FedAvg or FedProx from Flower, sampling every client each round. A client that fails fails the run: averaging
    the clients that happened to succeed would hide the error."""
    from flwr.serverapp.strategy import FedAvg, FedProx

    base = FedProx if opts.strategy == "fedprox" else FedAvg
    n = opts.clients

    class AllClients(base):
        def aggregate_train(self, server_round, replies):
            replies = list(replies)
            failed = [m for m in replies if m.has_error()]
            if failed:
                raise RuntimeError(f"{len(failed)} of {n} federated clients failed in round {server_round}: "
                                   f"{failed[0].error.reason}")
            if len(replies) < n:
                raise RuntimeError(f"only {len(replies)} of {n} federated clients answered in round {server_round}")
            arrays, metrics = super().aggregate_train(server_round, replies)
            self.last_train_metrics = dict(metrics or {})  # clients' metrics averaged by rows: train_loss
            self.last_client_metrics = [dict(m.content["metrics"]) for m in replies]
            return arrays, metrics

    kwargs = {"proximal_mu": opts.mu} if opts.strategy == "fedprox" else {}
    return AllClients(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=n, min_evaluate_nodes=0,
                      min_available_nodes=n, **kwargs)


def _local_grid_class():
    from flwr.app import Context, Message, RecordDict
    from flwr.serverapp import Grid

    class LocalGrid(Grid):
        """Flower's ``Grid`` for clients living in this process: each message goes straight to the ``ClientApp``
        (one client after another, no threads or processes), and its reply comes back in order."""

        def __init__(self, client_app, num_nodes: int, on_reply: Optional[Callable[[int, Any], None]] = None):
            try:  # who is sending: Flower's ServerApp runtime (and run_simulation) set this before a strategy runs
                from flwr.supercore.task_identity import TaskIdentity

                TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, RUN_ID, SERVER_NODE_ID
            except ImportError:  # Flower versions before the task identity
                pass
            self._app = client_app
            self._contexts = {
                FIRST_CLIENT_NODE_ID + k: Context(run_id=RUN_ID, node_id=FIRST_CLIENT_NODE_ID + k, state=RecordDict(),
                                                  node_config={"partition-id": k, "num-partitions": num_nodes}, run_config={})
                for k in range(num_nodes)
            }
            self._replies: dict[str, Message] = {}
            self._sent = 0
            self._on_reply = on_reply
            self._run = None

        def set_run(self, run) -> None:
            self._run = run

        @property
        def run(self):
            return self._run

        def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
            return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

        def get_node_ids(self):
            return list(self._contexts)

        def push_messages(self, messages):
            ids = []
            for i, msg in enumerate(messages):
                reply = self._app(msg, self._contexts[msg.metadata.dst_node_id])
                self._sent += 1
                key = str(self._sent)
                self._replies[key] = reply
                ids.append(key)
                if self._on_reply:
                    self._on_reply(i + 1, reply)
            return ids

        def pull_messages(self, message_ids):
            return [self._replies.pop(i) for i in message_ids if i in self._replies]

        def send_and_receive(self, messages, *, timeout=None):
            return self.pull_messages(self.push_messages(messages))

    return LocalGrid


# --------------------------------------------------------------------------------------------- the client
def local_train(model, task, x: dict, y: np.ndarray, train_cfg, epochs: int, seed: int, mu: float = 0.0,
                dp=None, planned_epochs: Optional[int] = None, loss: Optional[Callable] = None) -> dict:
    """A client's local epochs: shuffled mini-batches, the task's loss (+ FedProx's mu/2 * ||w - w_global||^2), our
    optimizer at a constant learning rate, gradient clipping. Returns the mean training loss.

    ``dp`` (forgeml.privacy.dp.DPSGD) trains with DP-SGD instead: Poisson-sampled batches, per-row clipping and noise
    calibrated for ``planned_epochs`` passes over these rows (all rounds), so the whole federation stays within the
    client's budget. FedProx's proximal gradient depends on no row, so it is added after the noise (no privacy cost)."""
    import torch

    from forgeml.train.loop import to_tensors
    from forgeml.train.optim import make_optimizer
    from forgeml.precision import autocast, resolve_device, resolve_precision

    criterion = loss or task.loss
    torch.manual_seed(seed)  # dropout, Poisson sampling
    device = resolve_device(train_cfg.device)
    precision = resolve_precision(train_cfg.precision, device)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    anchor = [p.detach().clone() for p in params] if mu > 0 else None
    optimizer = make_optimizer(model, train_cfg)
    xt, yt = to_tensors(x), torch.from_numpy(y)
    n = len(yt)
    size = min(train_cfg.batch_size, n)
    if dp is not None:
        optimizer, _ = dp.attach(model, optimizer, n, size, planned_epochs or epochs)
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    shuffle = torch.Generator().manual_seed(seed)
    total, seen = 0.0, 0
    for _ in range(epochs):
        if dp is not None:
            batches = dp.batches()
        else:
            order = torch.randperm(n, generator=shuffle)
            batches = (order[s : s + size] for s in range(0, n, size))
        for idx in batches:
            if dp is None and len(idx) == 1 and (has_bn or n > 1):
                continue  # a batch of one row breaks batch norm and adds only noise
            batch = {k: v[idx].to(device) for k, v in xt.items()}
            target = yt[idx].to(device)
            with autocast(precision, device):
                loss = criterion(model(batch), target)
            objective = loss
            if anchor is not None and dp is None:
                objective = objective + mu / 2 * sum((p - a).pow(2).sum() for p, a in zip(params, anchor))
            if train_cfg.l1:
                objective = objective + train_cfg.l1 * sum(p.abs().sum() for p in params if p.ndim >= 2)
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            if dp is None:
                if train_cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, train_cfg.grad_clip)
                optimizer.step()
            elif optimizer.pre_step():  # Opacus: clip each row's gradient, add noise, account the step
                if anchor is not None:
                    for p, a in zip(params, anchor):
                        p.grad.add_(p.detach() - a, alpha=mu)
                optimizer.original_optimizer.step()
            if len(idx):  # a Poisson-sampled (DP) batch may be empty: its loss is nan
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
    return {"train_loss": total / max(1, seen), "rows": n, "seen": seen}


@dataclass
class _ClientData:
    """What every client needs to train (pickled to Ray actors by the simulation engine)."""

    model_name: str
    params: Any
    shapes: dict
    task: Any
    train_cfg: Any
    parts: list  # per client: (x dict, y array)
    seed: int
    threads: Optional[int] = None
    loss: Optional[Callable] = None  # data.balance's class-weighted / focal loss; None: the task's
    planned_epochs: int = 1  # rounds x local epochs: what DP noise is calibrated for
    dp_fixed: bool = False  # layers replaced for DP-SGD (BatchNorm -> GroupNorm, ...): clients rebuild the same


def _build(data: "_ClientData"):
    from forgeml.models import get_model

    model = get_model(data.model_name).build(data.params, data.shapes, data.task.out_dim)
    if data.dp_fixed:
        from forgeml.privacy.dp import rebuild

        model = rebuild(model)
    return model


def _client_train(data: _ClientData, msg, context):
    """The ``ClientApp``'s train function: global weights in, local epochs, local weights and row count out."""
    import torch
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

    if data.threads:
        torch.set_num_threads(data.threads)
    k = int(context.node_config["partition-id"])
    config = msg.content["config"]
    rnd = int(config["server-round"])
    model = _build(data)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    x, y = data.parts[k]
    seed = int(np.random.SeedSequence([data.seed, rnd, k]).generate_state(1)[0])
    dp, train_cfg = None, data.train_cfg
    if train_cfg.privacy is not None:
        from forgeml.privacy.dp import DPSGD

        dp = DPSGD(train_cfg, len(y))
        train_cfg = dp.train_config
    info = local_train(model, data.task, x, y, train_cfg, int(config["local-epochs"]), seed, loss=data.loss,
                       mu=float(config.get("proximal-mu", 0.0)), dp=dp, planned_epochs=data.planned_epochs)
    state = {name: t.detach().cpu() for name, t in model.state_dict().items()}
    metrics = {"num-examples": int(len(y)), "train_loss": float(info["train_loss"]), "client": k}
    if dp is not None:
        metrics.update(_account(dp, context))
        dp.close()
    metrics = MetricRecord(metrics)
    return Message(RecordDict({"arrays": ArrayRecord(state), "metrics": metrics}), reply_to=msg)


def _account(dp, context) -> dict:
    """Carry a client's privacy accounting across rounds in its Flower context (which outlives one round): the
    accountant's history of (noise multiplier, sample rate, steps) is restored before this round's steps were
    added, so the epsilon reported is what all rounds so far spent on this client's rows."""
    from flwr.app import ConfigRecord

    engine = dp.private.engine
    now = [tuple(h) for h in engine.accountant.history]
    if "dp" in context.state:
        rec = context.state["dp"]
        engine.accountant.history = [(float(a), float(b), int(c)) for a, b, c in
                                     zip(rec["noise"], rec["rate"], rec["steps"])] + now
    hist = engine.accountant.history
    context.state["dp"] = ConfigRecord({"noise": [float(h[0]) for h in hist], "rate": [float(h[1]) for h in hist],
                                        "steps": [int(h[2]) for h in hist]})
    spent = dp.private.spent()
    return {"epsilon": float(spent["epsilon"]), "noise_multiplier": float(spent["noise_multiplier"]),
            "sample_rate": float(spent["sample_rate"]), "steps": int(spent["steps"])}


def _client_app(data: _ClientData):
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg, context):
        return _client_train(data, msg, context)

    return app


# --------------------------------------------------------------------------------------------- the run
def federate(cfg, opts: FederatedOptions, *, overwrite: bool = False, quiet: bool = False, say=None):
    """Federated training, evaluation, comparison with centralized training, and a run folder like ``train``'s."""
    import shutil

    import torch

    from forgeml import artifacts
    from forgeml.evaluate.report import rerender, write_section
    from forgeml.run import summary as run_summary
    from forgeml.train import pipeline
    from forgeml.config import EarlyStopping
    from forgeml.models import get_model
    from forgeml.privacy.partition import describe, label_groups, partition
    from forgeml.progress import TrainProgress
    from forgeml.tracking import Tracker
    from forgeml.train.loop import evaluate_split, fit, predict_raw

    say = say or pipeline.stderr_say(quiet)
    opts.check()
    if cfg.model.name != "auto" and "torch" not in get_model(cfg.model.name).tags:
        raise ConfigError(f"{cfg.model.name} cannot be federated here: it has no network weights to average (boosted trees); "
                          "use --model mlp (tables), cnn (images) or text")
    if cfg.train.privacy is not None:
        require("opacus", "privacy", "forgeml federate --epsilon (DP-SGD on every client)")
    if opts.engine == "simulation":
        require("ray", "cluster", "forgeml federate --engine simulation (Flower's Ray-based Simulation Engine)")
    _flower()
    _set_flower_logging(opts.flower_log_level)
    run_dir = cfg.run_dir
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise RunError(f"{run_dir} already exists; use --overwrite to replace it, or --name for a new run")

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
    from forgeml.data import balance

    train_loss = None
    if classification:
        train_loss = balance.training_loss(cfg.data.balance, data.y["train"], task.out_dim)  # class weights / focal
    tune_threshold = classification and cfg.data.balance.threshold != "none"
    client_data = _ClientData(name, params, shapes, task, cfg.train,
                              [({k: v[idx] for k, v in data.enc["train"].items()}, data.y["train"][idx]) for idx in parts],
                              cfg.train.seed, threads=1 if opts.engine == "simulation" else cfg.train.threads,
                              planned_epochs=opts.rounds * opts.local_epochs, dp_fixed=privacy is not None, loss=train_loss)

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
        fed = _run_rounds(opts, client_data, server_model, task, data, monitor, tracker, quiet, evaluate_split)
        server_model.load_state_dict(fed["best_state"])
        server_model.eval()
        val_raw = predict_raw(server_model, data.enc["val"])
        val_metrics = task.metrics(data.y["val"], task.outputs(val_raw))
        say(f"  federated {name}: val {task.primary_metric} = {_fmt(val_metrics.get(task.primary_metric))} "
            f"(kept round {fed['kept_round']} of {opts.rounds}, {fed['seconds']:.1f} s)")

        central = None
        if opts.central:
            torch.manual_seed(cfg.train.seed)
            central_model = get_model(name).build(params, shapes, task.out_dim)
            central_cfg = cfg.train.model_copy(update={"epochs": budget,
                                                       "early_stopping": EarlyStopping(monitor=monitor, patience=budget)})
            tic = time.perf_counter()
            dp = None
            if privacy is not None:  # the same budget, spent by DP-SGD on the pooled rows
                from forgeml.privacy.dp import DPSGD

                dp = DPSGD(central_cfg, len(data.y["train"]))
                central_model = dp.prepare(central_model, data.enc["train"], data.y["train"], train_loss or task.loss)
                central_cfg = dp.train_config
            info = fit(central_model, task, data.enc["train"], data.y["train"], data.enc["val"], data.y["val"], central_cfg,
                       progress=TrainProgress(f"central {name}", quiet), loss=train_loss, privacy=dp)
            if dp is not None:
                dp.close()
            c_raw = {s: predict_raw(central_model, data.enc[s]) for s in ("val", "test")}
            if tune_threshold:  # the centralized model gets its own threshold, tuned on validation like the federated one
                tuned = balance.tune_threshold(data.y["val"], task.outputs(c_raw["val"])["proba"][:, 1],
                                               cfg.data.balance.threshold, cfg.data.balance.target_recall)
                task.state["threshold"] = tuned["threshold"]
            c_out = {s: task.outputs(raw) for s, raw in c_raw.items()}
            task.state.pop("threshold", None)
            central = {"model": name, "epochs": budget, "best_epoch": info.best_epoch, "monitor": info.monitor,
                       "seconds": round(time.perf_counter() - tic, 3),
                       "val": run_summary(task.name, task.metrics(data.y["val"], c_out["val"])),
                       "test": run_summary(task.name, task.metrics(data.y["test"], c_out["test"])),
                       "history": info.history, **({"privacy": dp.report()} if dp is not None else {})}
            say(f"  centralized {name}: val {task.primary_metric} = {_fmt(central['val'].get(task.primary_metric))} "
                f"({budget} epochs, {central['seconds']:.1f} s)")

        summary = {
            "options": {k: v for k, v in asdict(opts).items() if k != "flower_log_level"},
            "model": name, "engine": opts.engine, "monitor": monitor, "kept_round": fed["kept_round"],
            "seconds": round(fed["seconds"], 3), "rounds": fed["rounds"], "partition": stats, "central": central,
            "clients": fed["clients"],
            "preprocessing": "fitted on the pooled training split (as forgeml train does); only training is federated",
        }
        _plot_rounds(summary, task, run_dir / "plots" / PLOT)
        chosen = {"model": name, "params": params, "estimator": server_model, "fit": None, "raw": {"val": val_raw},
                  "val": val_metrics, "seconds": fed["seconds"],
                  "privacy": _privacy_report(privacy, fed["clients"], replaced) if privacy is not None else None}
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


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _run_rounds(opts, client_data: _ClientData, server_model, task, data, monitor: str, tracker, quiet: bool,
                evaluate_split) -> dict:
    """Run the Flower strategy for ``opts.rounds`` rounds; evaluate the global model on validation after each."""
    from flwr.app import ArrayRecord, ConfigRecord, MetricRecord

    from forgeml.progress import TrainProgress
    from forgeml.tasks import better

    progress = TrainProgress("federated rounds", quiet)
    progress.start(opts.rounds, opts.clients)
    rounds: list[dict] = []
    best = {"round": -1, "score": None, "state": None}
    clock = {"t": time.perf_counter()}
    strategy = _make_strategy(opts)

    def evaluate_fn(server_round: int, arrays) -> Optional[MetricRecord]:
        if server_round == 0:
            return None  # the random initial model: nothing to learn from
        state = arrays.to_torch_state_dict()
        server_model.load_state_dict(state)
        m = evaluate_split(server_model, task, data.enc["val"], data.y["val"], 512, next(server_model.parameters()).device,
                           "fp32", monitor)
        logs = {"round": server_round, **{f"val_{k}": float(v) for k, v in m.items() if isinstance(v, (int, float)) and k != "n"}}
        if "train_loss" in getattr(strategy, "last_train_metrics", {}):
            logs["client_train_loss"] = float(strategy.last_train_metrics["train_loss"])
        spent = [c["epsilon"] for c in getattr(strategy, "last_client_metrics", []) if "epsilon" in c]
        if spent:
            logs["client_epsilon_max"] = float(max(spent))
        logs["seconds"] = round(time.perf_counter() - clock["t"], 3)
        clock["t"] = time.perf_counter()
        rounds.append(logs)
        score = logs.get(monitor)
        if score is None:
            raise RunError(f"early_stopping.monitor {monitor!r} is not computed per round; use val_loss or val_accuracy")
        if best["round"] < 0 or better(monitor, score, best["score"]):
            best.update(round=server_round, score=score, state={k: v.detach().clone() for k, v in state.items()})
        tracker.epoch({"epoch": server_round, **{k: v for k, v in logs.items() if k not in ("round", "seconds")}}, "federated.")
        progress.epoch(server_round - 1, {"val_loss": logs["val_loss"], **logs}, monitor if monitor != "val_loss" else
                       ("val_accuracy" if "val_accuracy" in logs else "val_loss"))
        return MetricRecord({k: v for k, v in logs.items() if isinstance(v, float)})

    def on_reply(done: int, reply) -> None:
        if not reply.has_error():
            progress.step(done, float(reply.content["metrics"]["train_loss"]))

    initial = ArrayRecord({k: v.detach().cpu() for k, v in server_model.state_dict().items()})
    train_config = ConfigRecord({"local-epochs": opts.local_epochs})
    saved_random = random.getstate()
    random.seed(client_data.seed)  # Flower samples (all) clients with `random`: a fixed order, reproducible sums
    tic = time.perf_counter()
    calibrate = _calibrate_once() if client_data.train_cfg.privacy is not None else contextlib.nullcontext()
    try:
        with calibrate:
            if opts.engine == "local":
                grid = _local_grid_class()(_client_app(client_data), opts.clients, on_reply)
                strategy.start(grid=grid, initial_arrays=initial, num_rounds=opts.rounds, train_config=train_config,
                               evaluate_fn=evaluate_fn)
            else:
                _simulate(opts, client_data, strategy, initial, train_config, evaluate_fn)
    finally:
        random.setstate(saved_random)
        progress.close()
    if len(rounds) != opts.rounds:
        raise RuntimeError(f"Flower ran {len(rounds)} of {opts.rounds} rounds")
    clients = sorted(({k: (int(v) if k in ("client", "num-examples", "steps") else v) for k, v in c.items()}
                      for c in strategy.last_client_metrics), key=lambda c: c["client"])
    return {"rounds": rounds, "kept_round": best["round"], "best_state": best["state"], "clients": clients,
            "seconds": time.perf_counter() - tic}


@contextlib.contextmanager
def _calibrate_once():
    """Remember Opacus' noise calibration for this run. Each round, every DP client makes a fresh optimizer private
    with ``make_private_with_epsilon``, which searches for the noise multiplier of (epsilon, delta, sample rate,
    epochs): the same answer every round, and seconds of work each time. A pure function of scalars, so it is cached
    while the rounds run (in this process; Ray actors calibrate for themselves) and restored afterwards."""
    try:
        import opacus.privacy_engine as engine
    except ImportError:
        yield
        return
    original = engine.get_noise_multiplier
    engine.get_noise_multiplier = functools.lru_cache(maxsize=None)(original)
    try:
        yield
    finally:
        engine.get_noise_multiplier = original


def _simulate(opts, client_data, strategy, initial, train_config, evaluate_fn) -> None:
    """Flower's Simulation Engine: the ServerApp runs in a thread here, each ClientApp in a Ray actor (one CPU each)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports from Ray either
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    done = {}
    server = ServerApp()

    @server.main()
    def main(grid, context) -> None:
        done["result"] = strategy.start(grid=grid, initial_arrays=initial, num_rounds=opts.rounds,
                                        train_config=train_config, evaluate_fn=evaluate_fn)

    cpus = max(1, min(opts.clients, os.cpu_count() or 1))
    run_simulation(server_app=server, client_app=_client_app(client_data), num_supernodes=opts.clients,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": cpus, "logging_level": "error", "log_to_driver": False}})
    if "result" not in done:
        raise RuntimeError("Flower's simulation ended without finishing the rounds (see the errors above)")


def _privacy_report(privacy, clients: list[dict], replaced: list[dict]) -> dict:
    """metrics.json "privacy" for a federated run: each client is its own DP-SGD mechanism over its own rows, so the
    guarantee is per client (record-level for that client's data); the figures are the worst client's."""
    return {"epsilon": max(c["epsilon"] for c in clients), "delta": privacy.delta,
            "noise_multiplier": min(c["noise_multiplier"] for c in clients), "max_grad_norm": privacy.max_grad_norm,
            "target_epsilon": privacy.epsilon, "accountant": privacy.accountant,
            "steps": max(c["steps"] for c in clients), "sample_rate": max(c["sample_rate"] for c in clients),
            "replaced_layers": replaced, "scope": "per client: DP-SGD on each client's rows, all rounds accounted"}


# --------------------------------------------------------------------------------------------- plot and report
def _round_metric(task) -> str:
    return "val_accuracy" if "labels" in task.tags else "val_rmse"


def _plot_rounds(summary: dict, task, path) -> None:
    key = _round_metric(task)
    central = summary["central"]
    central_value = None
    if central is not None:
        central_value = central["val"].get(key.removeprefix("val_"))
    federated_rounds(summary["rounds"], key, path, central_value,
                     title=f"{summary['options']['strategy']}, {summary['options']['clients']} clients, "
                           f"{summary['partition']['method']}"
                           f"{' alpha ' + str(summary['options']['alpha']) if summary['partition']['method'] == 'dirichlet' else ''}",
                     kept_round=summary["kept_round"])


def federated_rounds(rounds: list[dict], key: str, path, central: Optional[float] = None, title: str = "",
                     kept_round: Optional[int] = None):
    """The global model's validation metric and loss after each round, the centralized model's value as a line."""
    from forgeml.evaluate.plots import pyplot, save_figure

    plt = pyplot()
    x = [r["round"] for r in rounds]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].plot(x, [r[key] for r in rounds], marker="o", ms=3, label="federated (global model)")
    if central is not None:
        axes[0].axhline(central, color="tab:red", ls="--", lw=1.2, label=f"centralized ({central:.4f})")
    axes[0].set_xlabel("round"), axes[0].set_title(key.replace("_", " ") + (f" ({title})" if title else ""), fontsize=10)
    axes[1].plot(x, [r["val_loss"] for r in rounds], marker="o", ms=3, label="validation loss (global model)")
    if all("client_train_loss" in r for r in rounds):
        axes[1].plot(x, [r["client_train_loss"] for r in rounds], marker="o", ms=3, label="clients' training loss")
    axes[1].set_xlabel("round"), axes[1].set_title("loss")
    for ax in axes:
        ax.grid(alpha=0.3)
        if kept_round is not None and kept_round > 0:
            ax.axvline(kept_round, color="grey", ls=":", lw=1, label=f"kept round {kept_round}" if ax is axes[0] else None)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def report_section(run_dir, metrics: dict) -> list[str]:
    """The report's "Federated learning" section: federated vs centralized, the partition, the rounds plot."""
    from forgeml.tasks import summary_keys
    from forgeml.evaluate.html import img, table

    fed = metrics["federated"]
    o = fed["options"]
    from forgeml import artifacts

    task = artifacts.read_manifest(run_dir)["task"]
    keys = [k for k in summary_keys(task) if metrics["test"].get(k) is not None]
    rows = [[f"{fed['model']} federated ({o['strategy']}, kept round {fed['kept_round']})", *[metrics["test"].get(k) for k in keys]]]
    if fed.get("central"):
        rows.append([f"{fed['model']} centralized ({fed['central']['epochs']} epochs)", *[fed["central"]["test"].get(k) for k in keys]])
    if metrics.get("baseline"):
        rows.append([f"baseline: {metrics['baseline']['name']}", *[metrics["baseline"]["test"].get(k) for k in keys]])
    part = fed["partition"]
    classes = list(part["clients"][0]["class_counts"]) if part["clients"] else []
    parts = [
        "<h2>Federated learning</h2>",
        f"<p class=note>{o['clients']} clients, {o['rounds']} rounds x {o['local_epochs']} local epoch(s), "
        f"strategy {o['strategy']}{' (mu ' + str(o['mu']) + ')' if o['strategy'] == 'fedprox' else ''}, partition "
        f"{part['method']}{' (alpha ' + str(o['alpha']) + ')' if part['method'] == 'dirichlet' else ''}, engine "
        f"{fed['engine']}, {fed['seconds']:.1f} s. The centralized model is the same network trained on the pooled "
        "training split for rounds x local epochs epochs. Preprocessing was fitted on the pooled training split.</p>",
        "<h3>Test metrics: federated vs centralized</h3>",
        table(["model", *keys], rows),
        "<h3>Partition (training rows per client)</h3>",
        table(["client", "rows", "label skew (TV distance)", *classes],
               [[c["client"], c["rows"], c["label_skew"], *c["class_counts"].values()] for c in part["clients"]]),
    ]
    if metrics.get("privacy"):
        parts.append("<p class=note>Differential privacy here is per client: every client ran DP-SGD on its own rows, "
                     "with its noise calibrated for all rounds, and the figures in the Differential privacy section are "
                     "the worst client's. The centralized comparison spent the same budget on the pooled rows.</p>")
    plot = run_dir / "plots" / PLOT
    if plot.is_file():
        parts.append(img(plot))
    return parts
