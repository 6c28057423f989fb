"""The training loop: one readable function, top to bottom, no framework hiding the step.

Data are small enough to hold as tensors, so a batch is an index into them (no DataLoader workers to tune). What a
step computes is the task's: ``for name, loss in task.step(model, batch)`` backpropagates each loss and steps the
optimizer of that name (one, "model", for most tasks; a GAN has two). A checkpoint is written after every epoch;
``resume=True`` continues from the last one with the same RNG state, so a resumed run ends where an uninterrupted
one would.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from forgeml.artifacts import load_tensors, save_tensors
from forgeml.errors import ConfigError, RunError
from forgeml.models.inference import predict_raw, to_tensors  # noqa: F401  (re-exported for the loop's callers)
from forgeml.tasks import Task, better
from forgeml.train import checkpoint
from forgeml.train.optim import make_optimizer, make_schedule
from forgeml.precision import autocast, grad_scaler, resolve_device, resolve_precision


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = float("nan")
    monitor: str = "val_loss"
    stopped_early: bool = False
    seconds: float = 0.0
    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 0  # the CPU threads it trained with
    parameters: int = 0  # the network's parameters, and how many of them training updated (LoRA, a frozen encoder)
    trainable: int = 0
    processes: int = 1  # data-parallel ranks (forgeml train --nproc) and how they shared the network
    parallel: Optional[str] = None


def evaluate_split(model, task: Task, arrays, y: np.ndarray, batch_size: int, device, precision, monitor: str = "val_loss") -> dict:
    """Per-epoch validation: the loss and the task's cheap metrics; the full suite only when it is monitored."""
    raw = predict_raw(model, arrays, batch_size, device, precision)
    outputs = task.outputs(raw)
    metrics = task.quick_metrics(y, outputs)
    name = monitor.removeprefix("val_")
    if name != "loss" and name not in metrics:
        metrics = task.metrics(y, outputs)
    metrics["loss"] = task.validation_loss(raw, y)
    return metrics


def fit(model: torch.nn.Module, task: Task, train, y_train, val, y_val, cfg, *args, **kwargs) -> FitResult:
    """Train with ``cfg`` (see ``_fit``) on ``cfg.threads`` CPU threads, or when unset on as many as
    forgeml.train.threads chooses for this model; the process's own thread count comes back afterwards."""
    from forgeml.train.threads import threads_for

    before = torch.get_num_threads()
    threads = cfg.threads or threads_for(model)
    if kwargs.get("parallel") is not None:  # the ranks on this machine share its CPUs
        threads = kwargs["parallel"].threads(threads)
    torch.set_num_threads(threads)
    try:
        result = _fit(model, task, train, y_train, val, y_val, cfg, *args, **kwargs)
    finally:
        torch.set_num_threads(before)
    result.threads = threads
    return result


def _fit(
    model: torch.nn.Module,
    task: Task,
    train: dict[str, np.ndarray],
    y_train: Optional[np.ndarray],
    val: Optional[dict[str, np.ndarray]],
    y_val: Optional[np.ndarray],
    cfg,
    checkpoint_dir: Optional[Path] = None,
    resume: bool = False,
    progress=None,
    on_epoch: Optional[Callable[[dict], None]] = None,
    loss: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
    augment: Optional[Callable] = None,
    privacy=None,
    parallel=None,
) -> FitResult:
    """Train with ``cfg``, keeping the best epoch on validation. ``y_train`` is None for tasks without a target
    (anomaly detection); else each batch carries its rows as ``batch["y"]``. ``loss(outputs, y_train rows)`` replaces
    a supervised task's loss for the training step only (y_train may then carry extra columns, e.g. a teacher's
    outputs); validation always uses the task's own. ``augment(batch, generator) -> (batch, mix)`` changes training
    batches on the fly (forgeml.data.augment); mix = (permutation, lam) goes to the step as ``batch["mix"]`` (the
    mixup loss). ``privacy`` (an engine such as DP-SGD) draws the batches and makes the optimizer private. Without
    ``val`` (None) no epoch is validated and the last epoch's weights are kept. ``parallel`` (a data-parallel engine,
    forgeml.train.distributed) gives each rank its share of every batch and averages the gradients; rank 0 decides
    and writes, the others follow."""
    step = task.step if loss is None else partial(task.step, loss=loss)
    torch.manual_seed(cfg.seed + (parallel.rank if parallel is not None else 0))  # dropout differs between ranks
    device = resolve_device(cfg.device)
    if parallel is not None:
        device = parallel.device(device)
    precision = resolve_precision(cfg.precision, device)
    if parallel is None or not parallel.shards:
        model.to(device)  # (FSDP moves each rank's shard of a copy there; the plain model stays on the CPU)
    net = model if parallel is None else parallel.wrap(model, step)  # the module the optimizers train
    main = parallel is None or parallel.is_main

    x_train = to_tensors(train)
    y_train_t = torch.from_numpy(y_train) if y_train is not None else None
    x_val = to_tensors(val) if val is not None else None
    n = len(next(iter(x_train.values())))
    batches_per_epoch = whole_batches(n, cfg.batch_size, parallel.world if parallel is not None else 1)
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)

    groups = task.parameter_groups(net)  # optimizer name -> the module it trains
    if len(groups) > 1 and cfg.grad_accum > 1:
        raise ConfigError(f"train.grad_accum > 1 does not work with a task that trains {len(groups)} optimizers "
                          f"({', '.join(groups)}); set train.grad_accum: 1")
    if len(groups) > 1 and parallel is not None:
        raise ConfigError(f"data-parallel training (--nproc) trains tasks with one optimizer; this task steps "
                          f"{len(groups)} ({', '.join(groups)}): train it in one process")
    optimizers = {name: make_optimizer(module, cfg) for name, module in groups.items()}
    if privacy is not None:  # the optimizer now clips each row's gradient and adds noise; batches come from privacy
        optimizers["model"], batches_per_epoch = privacy.attach(model, optimizers["model"], n, cfg.batch_size, cfg.epochs)
        steps_per_epoch = batches_per_epoch
    schedulers = {name: make_schedule(opt, cfg, steps_per_epoch * cfg.epochs) for name, opt in optimizers.items()}
    scaler = grad_scaler(precision, device)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    es = cfg.early_stopping
    result = FitResult(monitor=es.monitor if es else "val_loss", device=str(device), precision=precision,
                       **({"processes": parallel.world, "parallel": parallel.strategy} if parallel is not None else {}))
    best_state, bad_epochs, start_epoch = None, 0, 0

    if resume:
        if checkpoint_dir is None or not checkpoint.exists(checkpoint_dir):
            raise RunError(f"--resume: no checkpoint in {checkpoint_dir}; train without --resume to start fresh")
        saved = checkpoint.restore(checkpoint_dir, net, optimizers, schedulers, scaler, shuffle, parallel)
        if privacy is not None:
            privacy.load_state_dict(saved["privacy"])  # the steps already taken count against the budget
        start_epoch, bad_epochs = saved["epoch"] + 1, saved["bad_epochs"]
        if saved.get("finished"):  # stopped (early or at the last epoch) before the run was written: no more epochs
            start_epoch, result.stopped_early = cfg.epochs, saved.get("stopped_early", False)
        result.history, result.best_epoch, result.best_score = saved["history"], saved["best_epoch"], saved["best_score"]
        if (checkpoint_dir / checkpoint.BEST).is_file():
            best_state = load_tensors(checkpoint_dir / checkpoint.BEST)

    weights = [p for p in net.parameters() if p.requires_grad and p.ndim >= 2]
    result.parameters = sum(p.numel() for p in model.parameters())
    result.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if parallel is not None:  # the task's step runs in the wrapped module's forward, on this rank's share of the batch
        step = lambda _, batch: iter([("model", parallel.trainer(batch))])  # noqa: E731
    if progress:
        progress.start(cfg.epochs, batches_per_epoch, start_epoch)
    t0 = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        # ---- train one epoch ----
        (model if parallel is None else parallel.trainer).train()
        tic = time.perf_counter()
        order = torch.randperm(n, generator=shuffle)
        poisson = privacy.batches() if privacy is not None else None
        running, seen = torch.zeros((), dtype=torch.float64, device=device), 0
        by_loss: dict[str, torch.Tensor] = {}  # every optimizer's loss, when there are several (a GAN's d and g)
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        for b in range(batches_per_epoch):
            idx = next(poisson) if poisson is not None else order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            weight = 1.0
            if parallel is not None:  # this rank's rows, weighted so the averaged gradient is the whole batch's mean
                rows, idx = len(idx), parallel.share(idx)
                weight = len(idx) * parallel.world / rows
            batch = {k: v[idx].to(device, non_blocking=True) for k, v in x_train.items()}
            mix = None
            if augment is not None:
                batch, mix = augment(batch, shuffle)
            if y_train_t is not None:
                batch["y"] = y_train_t[idx].to(device, non_blocking=True)
            if mix is not None:
                batch["mix"] = mix
            accumulate = min(cfg.grad_accum, batches_per_epoch - (b // cfg.grad_accum) * cfg.grad_accum)  # short last group
            do_step = (b + 1) % cfg.grad_accum == 0 or b + 1 == batches_per_epoch
            weight /= accumulate
            losses = TaskLosses(step, net, batch, precision, device)
            with parallel.sync(do_step) if parallel is not None else nullcontext():  # DDP: no all-reduce mid-accumulation
                for name, loss in losses:  # each loss is computed after the previous optimizer stepped (a GAN's g after d)
                    if cfg.l1 and name == "model":
                        loss = loss + cfg.l1 * sum(w.abs().sum() for w in weights)
                    scaler.scale(loss * weight if weight != 1 else loss).backward()
                    if do_step:
                        opt = optimizers[name]
                        if cfg.grad_clip:
                            scaler.unscale_(opt)
                            torch.nn.utils.clip_grad_norm_(groups[name].parameters(), cfg.grad_clip)
                        scaler.step(opt)
                        schedulers[name].step()
                        opt.zero_grad(set_to_none=True)
                    if len(idx) and name == losses.first:  # a Poisson-sampled (DP) batch may be empty: its loss is nan
                        running.add_(loss.detach(), alpha=len(idx))  # stays on the device: no sync per step
                    if len(idx) and len(optimizers) > 1:
                        by_loss.setdefault(name, torch.zeros((), dtype=torch.float64, device=device)).add_(
                            loss.detach(), alpha=len(idx))
            if do_step:
                scaler.update()  # once per iteration, after every optimizer stepped
            seen += len(idx)
            if progress and (b % 10 == 0 or b + 1 == batches_per_epoch):
                progress.step(b + 1, float(running) / max(1, seen))
        if parallel is not None:  # every rank's rows in the epoch's training loss
            running, seen = parallel.total(running), int(parallel.total(torch.tensor(seen)))
            by_loss = {k: parallel.total(v) for k, v in by_loss.items()}

        # ---- validate (rank 0, or every rank when the weights are sharded), early-stop, checkpoint ----
        evaluator = parallel.trainer if parallel is not None and parallel.shards else model
        validates = x_val is not None and (main or evaluator is not model)
        val_metrics = {} if not validates else evaluate_split(evaluator, task, x_val, y_val, max(512, cfg.batch_size),
                                                              device, precision, result.monitor)
        logs = {"epoch": epoch, "train_loss": float(running) / max(1, seen), "lr": next(iter(schedulers.values())).get_last_lr()[0],
                "seconds": time.perf_counter() - tic}
        logs.update({f"train_loss_{k}": float(v) / max(1, seen) for k, v in by_loss.items()})
        logs.update({f"val_{k}": v for k, v in val_metrics.items() if isinstance(v, (int, float)) and k != "n"})
        result.history.append(logs)
        score = logs.get(result.monitor)
        improved = False  # nothing to choose by without validation: the last epoch's weights are kept
        if x_val is not None and main:
            if score is None:
                raise RunError(f"early_stopping.monitor {result.monitor!r} is not computed for this task; "
                               f"choose one of {sorted(k for k in logs if k.startswith('val_'))}")
            improved = result.best_epoch < 0 or better(result.monitor, score, result.best_score, es.min_delta if es else 0.0)
        if parallel is not None:
            improved = parallel.agree(improved)  # decided once, by rank 0: every rank stops at the same epoch
        if improved:
            result.best_epoch, result.best_score, bad_epochs = epoch, score, 0
            best_state = snapshot(net, parallel)
            if checkpoint_dir and main:
                checkpoint.check_folder(checkpoint_dir)
                save_tensors(checkpoint_dir / checkpoint.BEST, best_state)
        elif x_val is not None:
            bad_epochs += 1
        stop = bool(es) and bad_epochs >= es.patience
        if checkpoint_dir:
            checkpoint.save(checkpoint_dir, net, optimizers, schedulers, scaler, shuffle, {
                "epoch": epoch, "bad_epochs": bad_epochs, "history": result.history,
                "best_epoch": result.best_epoch, "best_score": result.best_score, "finished": stop or epoch + 1 == cfg.epochs,
                "stopped_early": stop, **({"privacy": privacy.state_dict()} if privacy is not None else {}),
            }, parallel)
        if progress:
            progress.epoch(epoch, logs, result.monitor)
        if on_epoch:
            on_epoch(logs)
        if stop:
            result.stopped_early = True
            break

    if progress:
        progress.close()
    if best_state is None and net is not model:  # sharded (FSDP) without validation: gather the last weights
        best_state = snapshot(net, parallel)
    if best_state is not None and main:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - t0
    return result


def whole_batches(n: int, batch_size: int, ranks: int = 1) -> int:
    """Batches per epoch: a short last batch is dropped when it would give a rank no row, or batch norm one row (it
    adds only noise)."""
    batches = math.ceil(n / batch_size)
    if 0 < n % batch_size < max(2, ranks) and batches > 1:
        batches -= 1
    return batches


def snapshot(net: torch.nn.Module, parallel=None) -> dict:
    """A copy of the weights on the CPU (FSDP: gathered on rank 0, every rank taking part; the others get {})."""
    state = parallel.model_state(net) if parallel is not None else net.state_dict()
    return {k: v.detach().cpu().clone() for k, v in state.items()}


class TaskLosses:
    """Iterate a task's ``(optimizer name, loss)`` pairs for one batch, each forward pass under autocast and each
    backward pass outside it (PyTorch's advice). ``first``: the name of the first loss (the one logged as train_loss; with several optimizers each is logged too,
    as train_loss_NAME)."""

    def __init__(self, step, model, batch: dict, precision: str, device):
        self.steps, self.precision, self.device = step(model, batch), precision, device
        self.first = None

    def __iter__(self):
        return self

    def __next__(self):
        with autocast(self.precision, self.device):
            name, loss = next(self.steps)
        if self.first is None:
            self.first = name
        return name, loss
