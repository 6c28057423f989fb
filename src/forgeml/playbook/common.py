"""What the entries share: training a run quietly into the entry's folder, timing a call, and a bar plot."""
from __future__ import annotations

import time
from pathlib import Path


def train(out: Path, name: str, data: dict, model: dict, **config) -> "object":
    """A forgeml run under ``out/runs`` (no tracking, nothing printed), as a user's config would make it."""
    from forgeml import api

    return api.train({"name": name, "runs_dir": str(Path(out) / "runs"), "data": data, "model": model,
                      "tracking": {"uri": "none"}, **config}, quiet=True, overwrite=True)


def bars(path: Path, labels: list[str], values: list[float], ylabel: str, title: str) -> str:
    """A bar chart of one value per label, written to ``path``; returns its file name."""
    from forgeml.evaluate.plots import pyplot, save_figure

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.bar(labels, values, color=["#888888"] + ["#2b6cb0"] * (len(values) - 1))
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=9)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, max(values) * 1.2 if max(values) > 0 else 1)
    save_figure(fig, Path(path))
    return Path(path).name


def timed_ms(fn, calls: int, warmup: int = 1) -> list[float]:
    """Milliseconds of each of ``calls`` calls of ``fn``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times
