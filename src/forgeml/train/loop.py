"""The training loop: one readable function, top to bottom, no framework hiding the step.

Data are small enough to hold as tensors, so a batch is an index into them (no DataLoader workers to tune).
A checkpoint is written after every epoch; ``resume=True`` continues from the last one with the same RNG state,
so a resumed run ends where an uninterrupted one would.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from forgeml.artifacts import load_tensors, save_tensors
from forgeml.errors import RunError
from forgeml.tasks import Task, better
from forgeml.train import checkpoint
from forgeml.train.optim import make_optimizer, make_schedule
from forgeml.train.precision import autocast, grad_scaler, resolve_device, resolve_precision


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


def to_tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


@torch.no_grad()
def predict_raw(model, arrays: dict, batch_size: int = 512, device=None, precision: str = "fp32") -> np.ndarray:
    device = device or next(model.parameters()).device
    tensors = arrays if isinstance(next(iter(arrays.values())), torch.Tensor) else to_tensors(arrays)
    n = len(next(iter(tensors.values())))
    model.eval()
    outs = []
    for i in range(0, n, batch_size):
        batch = {k: v[i : i + batch_size].to(device, non_blocking=True) for k, v in tensors.items()}
        with autocast(precision, device):
            outs.append(model(batch).float().cpu())
    return torch.cat(outs).numpy().astype(np.float64)


def evaluate_split(model, task: Task, arrays, y: np.ndarray, batch_size: int, device, precision, monitor: str = "val_loss") -> dict:
    """Per-epoch validation: the loss and the task's cheap metrics; the full suite only when it is monitored."""
    raw = predict_raw(model, arrays, batch_size, device, precision)
    outputs = task.outputs(raw)
    metrics = task.quick_metrics(y, outputs)
    name = monitor.removeprefix("val_")
    if name != "loss" and name not in metrics:
        metrics = task.metrics(y, outputs)
    metrics["loss"] = float(task.loss(torch.from_numpy(raw).float(), torch.from_numpy(y)))
    return metrics


def fit(
    model: torch.nn.Module,
    task: Task,
    train: dict[str, np.ndarray],
    y_train: np.ndarray,
    val: dict[str, np.ndarray],
    y_val: np.ndarray,
    cfg,
    checkpoint_dir: Optional[Path] = None,
    resume: bool = False,
    progress=None,
    on_epoch: Optional[Callable[[dict], None]] = None,
    loss: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
    augment: Optional[Callable] = None,
    privacy=None,
) -> FitResult:
    """Train with ``cfg``, keeping the best epoch on validation. ``loss(outputs, y_train rows)`` replaces the task's loss
    for the training step only (y_train may then carry extra columns, e.g. a teacher's outputs); validation always
    uses the task's loss on y_val. ``augment(batch, generator) -> (batch, mix)`` changes training batches on the fly
    (forgeml.data.augment); mix = (permutation, lam) asks for the mixup loss lam * L(y) + (1 - lam) * L(y[perm]).
    ``privacy`` (forgeml.privacy.dp.DPSGD) trains with DP-SGD: Poisson-sampled batches, per-row clipping and noise."""
    criterion = task.loss if loss is None else loss
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    model.to(device)

    x_train, y_train_t = to_tensors(train), torch.from_numpy(y_train)
    x_val = to_tensors(val)
    n = len(y_train)
    batches_per_epoch = math.ceil(n / cfg.batch_size)
    if n % cfg.batch_size == 1 and batches_per_epoch > 1:
        batches_per_epoch -= 1  # a last batch of one row breaks batch norm and adds only noise
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)

    optimizer = make_optimizer(model, cfg)
    if privacy is not None:  # the optimizer now clips each row's gradient and adds noise; batches come from privacy
        optimizer, batches_per_epoch = privacy.attach(model, optimizer, n, cfg.batch_size, cfg.epochs)
        steps_per_epoch = batches_per_epoch
    scheduler = make_schedule(optimizer, cfg, steps_per_epoch * cfg.epochs)
    scaler = grad_scaler(precision, device)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    es = cfg.early_stopping
    result = FitResult(monitor=es.monitor if es else "val_loss", device=str(device), precision=precision)
    best_state, bad_epochs, start_epoch = None, 0, 0

    if resume:
        if checkpoint_dir is None or not checkpoint.exists(checkpoint_dir):
            raise RunError(f"--resume: no checkpoint in {checkpoint_dir}; train without --resume to start fresh")
        saved = checkpoint.restore(checkpoint_dir, model, optimizer, scheduler, scaler, shuffle)
        if privacy is not None:
            privacy.load_state_dict(saved["privacy"])  # the steps already taken count against the budget
        start_epoch, bad_epochs = saved["epoch"] + 1, saved["bad_epochs"]
        if saved.get("finished"):  # stopped (early or at the last epoch) before the run was written: no more epochs
            start_epoch, result.stopped_early = cfg.epochs, saved.get("stopped_early", False)
        result.history, result.best_epoch, result.best_score = saved["history"], saved["best_epoch"], saved["best_score"]
        if (checkpoint_dir / checkpoint.BEST).is_file():
            best_state = load_tensors(checkpoint_dir / checkpoint.BEST)

    weights = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    if progress:
        progress.start(cfg.epochs, batches_per_epoch, start_epoch)
    t0 = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        # ---- train one epoch ----
        model.train()
        tic = time.perf_counter()
        order = torch.randperm(n, generator=shuffle)
        poisson = privacy.batches() if privacy is not None else None
        running, seen = torch.zeros((), dtype=torch.float64, device=device), 0
        optimizer.zero_grad(set_to_none=True)
        for b in range(batches_per_epoch):
            idx = next(poisson) if poisson is not None else order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            batch = {k: v[idx].to(device, non_blocking=True) for k, v in x_train.items()}
            target = y_train_t[idx].to(device, non_blocking=True)
            mix = None
            if augment is not None:
                batch, mix = augment(batch, shuffle)
            with autocast(precision, device):
                out = model(batch)
                loss = criterion(out, target)
                if mix is not None:
                    perm, lam = mix
                    loss = lam * loss + (1 - lam) * criterion(out, target[perm])
            if cfg.l1:
                loss = loss + cfg.l1 * sum(w.abs().sum() for w in weights)
            group = min(cfg.grad_accum, batches_per_epoch - (b // cfg.grad_accum) * cfg.grad_accum)  # short last group
            scaler.scale(loss / group if group > 1 else loss).backward()
            if (b + 1) % cfg.grad_accum == 0 or b + 1 == batches_per_epoch:
                if cfg.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            if len(idx):  # a Poisson-sampled (DP) batch may be empty: its loss is nan
                running.add_(loss.detach(), alpha=len(idx))  # stays on the device: no sync per step
            seen += len(idx)
            if progress and (b % 10 == 0 or b + 1 == batches_per_epoch):
                progress.step(b + 1, float(running) / max(1, seen))

        # ---- validate, early-stop, checkpoint ----
        val_metrics = evaluate_split(model, task, x_val, y_val, max(512, cfg.batch_size), device, precision, result.monitor)
        logs = {"epoch": epoch, "train_loss": float(running) / max(1, seen), "lr": scheduler.get_last_lr()[0],
                "seconds": time.perf_counter() - tic}
        logs.update({f"val_{k}": v for k, v in val_metrics.items() if isinstance(v, (int, float)) and k != "n"})
        result.history.append(logs)
        score = logs.get(result.monitor)
        if score is None:
            raise RunError(f"early_stopping.monitor {result.monitor!r} is not computed for this task; "
                           f"choose one of {sorted(k for k in logs if k.startswith('val_'))}")
        if result.best_epoch < 0 or better(result.monitor, score, result.best_score, es.min_delta if es else 0.0):
            result.best_epoch, result.best_score, bad_epochs = epoch, score, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            if checkpoint_dir:
                save_tensors(checkpoint_dir / checkpoint.BEST, best_state)
        else:
            bad_epochs += 1
        stop = bool(es) and bad_epochs >= es.patience
        if checkpoint_dir:
            checkpoint.save(checkpoint_dir, model, optimizer, scheduler, scaler, shuffle, {
                "epoch": epoch, "bad_epochs": bad_epochs, "history": result.history,
                "best_epoch": result.best_epoch, "best_score": result.best_score, "finished": stop or epoch + 1 == cfg.epochs,
                "stopped_early": stop, **({"privacy": privacy.state_dict()} if privacy is not None else {}),
            })
        if progress:
            progress.epoch(epoch, logs, result.monitor)
        if on_epoch:
            on_epoch(logs)
        if stop:
            result.stopped_early = True
            break

    if progress:
        progress.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - t0
    return result
