"""Shared pieces of the benchmarks: data/model set-up through forgeml, the plain PyTorch baseline loop, tables."""
from __future__ import annotations

import math
import os
import platform
import statistics
import time
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_THREADS = min(2, os.cpu_count() or 1)


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def setup(config: dict):
    """Prepared data (forgeml.api.prepare) and a builder of fresh, identically initialised models."""
    from forgeml.api import prepare
    from forgeml.config import build_config
    from forgeml.models import get_model

    cfg = build_config({"tracking": {"uri": "none"}, **config})
    data = prepare(cfg)
    spec = get_model(cfg.model.name)
    shapes, out_dim = data.preprocessor.input_shapes(), data.task.out_dim

    def build(seed: int = 0) -> torch.nn.Module:
        torch.manual_seed(seed)  # as forgeml.api.train does before building
        return spec.build(cfg.model, shapes, out_dim)

    return cfg, data, build


def n_batches(n: int, batch_size: int) -> int:
    """Batches per epoch, as forgeml's loop counts them (a trailing batch of one row is dropped)."""
    nb = math.ceil(n / batch_size)
    return nb - 1 if n % batch_size == 1 and nb > 1 else nb


def cosine_factor(total_steps: int, warmup: float) -> Callable[[int], float]:
    """Linear warmup then cosine decay to 0 (written out here, not imported, so the baseline stays independent)."""
    total = max(1, total_steps)
    warm = int(warmup * total)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return factor


class PlainLoop:
    """A plain hand-written PyTorch training loop: randperm, index batches, forward, cross-entropy, backward, step.

    ``decay_groups``: AdamW without weight decay on 1-d parameters (what forgeml does; same cost either way);
    ``schedule``: None or (total_steps, warmup) for linear-warmup + cosine; ``grad_clip``: max norm or None.
    """

    def __init__(self, model, x: dict[str, np.ndarray], y: np.ndarray, batch_size: int, lr: float, weight_decay: float,
                 seed: int = 0, grad_clip: Optional[float] = None, schedule: Optional[tuple[int, float]] = None,
                 decay_groups: bool = False):
        self.model = model
        self.x = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in x.items()}
        self.y = torch.from_numpy(y)
        self.n, self.bs = len(y), batch_size
        self.nb = n_batches(self.n, batch_size)
        if decay_groups:
            params = [p for p in model.parameters() if p.requires_grad]
            groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                      {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
            self.opt = torch.optim.AdamW(groups, lr=lr)
        else:
            self.opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, cosine_factor(*schedule)) if schedule else None
        self.grad_clip = grad_clip
        self.gen = torch.Generator().manual_seed(seed)

    def epoch(self) -> float:
        """One training epoch; returns the mean training loss."""
        model, opt = self.model, self.opt
        model.train()
        order = torch.randperm(self.n, generator=self.gen)
        total, seen = 0.0, 0
        for b in range(self.nb):
            idx = order[b * self.bs : (b + 1) * self.bs]
            xb = {k: v[idx] for k, v in self.x.items()}
            loss = F.cross_entropy(model(xb), self.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
            opt.step()
            if self.sched:
                self.sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        return total / seen

    def samples_per_epoch(self) -> int:
        return min(self.n, self.nb * self.bs)


@torch.no_grad()
def accuracy(model, x: dict[str, np.ndarray], y: np.ndarray, batch_size: int = 512) -> float:
    model.eval()
    xt = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in x.items()}
    preds = [model({k: v[i : i + batch_size] for k, v in xt.items()}).argmax(1) for i in range(0, len(y), batch_size)]
    return float((torch.cat(preds).numpy() == y).mean())


class TrainPhaseTimer:
    """A `progress` object for forgeml's fit that records the time of each epoch's training phase only.

    fit calls start() before the first epoch, step(b + 1, loss) every 10 batches and after the last batch, and
    epoch() after validation and checkpointing: so [start/epoch() -> step(last batch)] is randperm + the train steps.
    """

    def __init__(self):
        self.train_s: list[float] = []

    def start(self, epochs, batches, first_epoch=0):
        self.batches, self.mark = batches, time.perf_counter()

    def step(self, done, loss):
        if done == self.batches:
            self.train_s.append(time.perf_counter() - self.mark)

    def epoch(self, epoch, logs, monitor):
        self.mark = time.perf_counter()

    def close(self):
        pass


def median(xs) -> float:
    return statistics.median(xs)


def spread(xs) -> str:
    return f"{min(xs):.0f}-{max(xs):.0f}"


def table(header: list[str], rows: list[list], align: Optional[str] = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    out = ["| " + " | ".join(header) + " |", sep]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v[:8]) - idle, sum(v[:8])


def other_load(window: float = 0.5) -> float:
    """CPU cores kept busy by other processes over a short window (we sleep meanwhile): 0.0 on a quiet machine."""
    try:
        b0, t0 = _cpu_jiffies()
        time.sleep(window)
        b1, t1 = _cpu_jiffies()
    except OSError:
        return 0.0
    return (b1 - b0) / max(1, t1 - t0) * (os.cpu_count() or 1)


def _own_cpu_jiffies() -> float:
    import resource

    r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime) * os.sysconf("SC_CLK_TCK")


class Meter:
    """Times a block and measures how many cores *other* processes kept busy meanwhile (machine busy - our CPU)."""

    def __enter__(self):
        self.b0, self.t0 = _cpu_jiffies()
        self.own0, self.w0 = _own_cpu_jiffies(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.w0
        b1, t1 = _cpu_jiffies()
        other = (b1 - self.b0) - (_own_cpu_jiffies() - self.own0)
        self.other = max(0.0, other / max(1, t1 - self.t0) * (os.cpu_count() or 1))
        return False


class QuietGate:
    """Before each timed run, wait until other processes use < `threshold` cores, within a total waiting budget.

    This machine is shared (tests may run beside the benchmark); a 2-thread torch run sharing 2 cores with another
    busy process slows down 2-10x (OpenMP threads wait on each other), which would swamp what is measured. Each run
    also records the load other processes put on the machine while it ran (Meter); `pick` keeps the quiet runs.
    """

    def __init__(self, threshold: float = 0.3, budget: float = 90.0):
        self.threshold, self.budget = threshold, budget
        self.waited = 0.0

    def wait(self) -> None:
        tic = time.perf_counter()
        while self.waited + (time.perf_counter() - tic) < self.budget and other_load() >= self.threshold:
            time.sleep(1.0)
        self.waited += time.perf_counter() - tic

    def pick(self, runs: list[tuple[float, float]], need: int = 3) -> tuple[list[float], str]:
        """runs: (value, other_load). The values of quiet runs if there are `need` of them, else all values."""
        quiet = [v for v, load in runs if load < self.threshold]
        if len(quiet) >= need:
            return quiet, f"{len(quiet)}/{len(runs)} quiet"
        return [v for v, _ in runs], f"{len(quiet)}/{len(runs)} quiet: all used"
