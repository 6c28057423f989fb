"""Latency and throughput of a model variant, measured the same way for each: batch 1 latency percentiles and
batch-64 throughput, after a warm-up, on the process's configured threads."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np


def _batch(feed: dict, start: int, size: int) -> dict:
    return {k: v[start : start + size] for k, v in feed.items()}


def speed(run: Callable[[dict], object], feed: dict, repeats: int = 200, budget_s: float = 10.0) -> dict:
    """p50/p95 latency of single rows (cycling through the rows of ``feed``) and rows/s at batch 64."""
    n = len(next(iter(feed.values())))
    for i in range(min(20, n)):  # warm-up: allocator, thread pool, lazy initialisation
        run(_batch(feed, i, 1))
    times = []
    deadline = time.perf_counter() + budget_s / 2
    for i in range(repeats):
        one = _batch(feed, i % n, 1)
        tic = time.perf_counter()
        run(one)
        times.append(time.perf_counter() - tic)
        if time.perf_counter() > deadline and len(times) >= 20:
            break
    big = {k: np.concatenate([v] * (-(-64 // n))) [:64] for k, v in feed.items()} if n < 64 else _batch(feed, 0, 64)
    run(big)
    rounds, tic = 0, time.perf_counter()
    while rounds < 50 and (rounds < 3 or time.perf_counter() - tic < budget_s / 2):
        run(big)
        rounds += 1
    ms = np.asarray(times) * 1e3
    return {"latency_ms_p50": float(np.percentile(ms, 50)), "latency_ms_p95": float(np.percentile(ms, 95)),
            "throughput_per_s": 64 * rounds / (time.perf_counter() - tic), "latency_samples": len(times)}
