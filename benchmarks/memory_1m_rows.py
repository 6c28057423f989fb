"""Peak memory and wall time of `forgeml.api.train` on a 1,000,000-row x 20-column table (model auto: MLP + LightGBM).

Baseline: the memory budget of 3 GB (peak RSS of the training process). The table (18 numeric + 2 categorical
columns, a binary target with signal) is generated here, written to a temporary parquet file, and trained on in a
child process so its peak RSS is the child's own. The child samples its RSS every 50 ms and reports the peak per
stage (read+split+preprocess, MLP fit, LightGBM fit, evaluation/report), by wrapping the stage functions from the
outside (nothing in src/ is changed).

    .venv/bin/python benchmarks/memory_1m_rows.py [--rows 1000000] [--epochs 1]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_GB = 3.0
GB = 1024**3


def make_table(rows: int, path: Path, seed: int = 0) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_num, cols = 18, {}
    x = rng.standard_normal((rows, n_num), dtype=np.float32)
    for j in range(n_num):
        cols[f"x{j}"] = x[:, j]
    city = rng.integers(0, 50, rows)
    plan = rng.integers(0, 5, rows)
    cols["city"] = pd.Categorical.from_codes(city, [f"city_{i}" for i in range(50)]).astype(str)
    cols["plan"] = pd.Categorical.from_codes(plan, ["free", "basic", "plus", "pro", "team"]).astype(str)
    city_effect = rng.normal(0, 0.8, 50)[city]
    plan_effect = np.array([-0.5, 0.0, 0.3, 0.6, 1.0])[plan]
    logit = 1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + 0.6 * np.sin(2 * x[:, 4]) + city_effect + plan_effect
    y = rng.random(rows) < 1 / (1 + np.exp(-logit))
    cols["churn"] = np.where(y, "yes", "no")
    missing = rng.random(rows) < 0.02  # a few missing values, as real tables have
    cols["x5"] = np.where(missing, np.nan, cols["x5"]).astype(np.float32)
    pd.DataFrame(cols).to_parquet(path, index=False)


CHILD = r'''
import json, os, resource, sys, threading, time
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
args = json.loads(sys.argv[1])
page = os.sysconf("SC_PAGE_SIZE")
stage = ["startup"]
peaks = {}
order = []

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page

def sampler():
    while True:
        r = rss()
        s = stage[0]
        if r > peaks.get(s, 0):
            peaks[s] = r
        time.sleep(0.05)

def enter(name):
    r = rss()
    stage[0] = name
    if name not in order:
        order.append(name)
    peaks[name] = max(peaks.get(name, 0), r)

threading.Thread(target=sampler, daemon=True).start()
enter("import")
import forgeml.api as api
import forgeml.models.gbdt as gbdt
import forgeml.train.loop as loop

stage_seconds = {}
def wrap(mod, attr, name, after=None):
    fn = getattr(mod, attr)
    def wrapped(*a, **k):
        enter(name)
        tic = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            stage_seconds[name] = stage_seconds.get(name, 0.0) + time.perf_counter() - tic
            if after:
                enter(after)
    setattr(mod, attr, wrapped)

wrap(api, "prepare", "prepare (read, split, preprocess)", after="between stages")
wrap(loop, "fit", "mlp fit", after="mlp predict val")
wrap(gbdt, "fit", "lightgbm fit", after="lightgbm predict val")
wrap(api, "_finish", "evaluate, plots, report")

calls = {}
def count(mod, attr, label):
    fn = getattr(mod, attr)
    def counted(*a, **k):
        tic = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            n, s = calls.get(label, (0, 0.0))
            calls[label] = (n + 1, s + time.perf_counter() - tic)
    setattr(mod, attr, counted)

count(gbdt, "raw_outputs", "lightgbm predictions (gbdt.raw_outputs)")
count(loop, "predict_raw", "torch predictions (loop.predict_raw, incl. per-epoch validation)")

tic = time.perf_counter()
result = api.train({
    "name": "mem1m", "runs_dir": args["runs_dir"], "tracking": {"uri": "none"},
    "data": {"source": args["source"], "target": "churn"},
    "model": {"name": "auto"},
    "train": {"epochs": args["epochs"], "batch_size": 1024},
}, quiet=True, overwrite=True)
wall = time.perf_counter() - tic
enter("done")
print("RESULT " + json.dumps({
    "wall_s": wall,
    "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "stages": [(s, peaks.get(s, 0), stage_seconds.get(s)) for s in order],
    "calls": calls,
    "model": result.metrics["model"],
    "candidates": result.metrics["candidates"],
    "test_auc": result.metrics["test"]["roc_auc"],
}))
'''


def run(rows: int = 1_000_000, epochs: int = 1, max_wait: float = 90.0) -> dict:
    from _common import Meter, QuietGate

    with tempfile.TemporaryDirectory(prefix="forgeml-bench-mem-") as tmp:
        tmp = Path(tmp)
        data = tmp / "table_1m.parquet"
        tic = time.perf_counter()
        make_table(rows, data)
        gen_s = time.perf_counter() - tic
        args = {"source": str(data), "runs_dir": str(tmp / "runs"), "epochs": epochs}
        gate = QuietGate(budget=max_wait)
        gate.wait()
        with Meter() as m:
            proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True)
        wall = m.seconds
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            raise SystemExit(f"training subprocess failed with exit code {proc.returncode}")
        line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
        out = json.loads(line[len("RESULT "):])
    out["children_maxrss"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # kB on Linux
    out["subprocess_wall_s"], out["generate_s"], out["rows"], out["epochs"] = wall, gen_s, rows, epochs
    out["other_load"], out["waited"] = m.other, gate.waited
    return out


def report(r: dict) -> str:
    from _common import machine

    peak = r["children_maxrss"]
    lines = [
        f"## memory_1m_rows: forgeml.api.train on {r['rows']:,} rows x 20 features (model auto, {r['epochs']} epoch(s), batch 1024)",
        "",
        "| measure | value | budget | ratio (value / budget) |",
        "|---|---:|---:|---:|",
        f"| peak RSS of the training process | {peak / GB:.2f} GB | {BUDGET_GB:.2f} GB | {peak / GB / BUDGET_GB:.2f} {'(within budget)' if peak / GB <= BUDGET_GB else '(OVER budget)'} |",
        f"| wall time of the training process (incl. start-up, imports) | {r['subprocess_wall_s']:.1f} s | | |",
        f"| wall time of api.train() | {r['wall_s']:.1f} s | | |",
        "",
        f"machine: {machine()}; other processes kept {r['other_load']:.2f} of {os.cpu_count()} cores busy during the run"
        + (" (NOISY: wall times are inflated)" if r["other_load"] >= 0.3 else " (quiet)"),
        "candidates: " + ", ".join(f"{c['model']} val roc_auc {c['val']['roc_auc']:.4f} ({c['seconds']:.1f} s)" for c in r["candidates"])
        + f"; kept {r['model']}, test roc_auc {r['test_auc']:.4f}",
        "",
        "| stage | peak RSS in stage | seconds |",
        "|---|---:|---:|",
    ]
    for name, p, s in r["stages"]:
        lines.append(f"| {name} | {p / GB:.2f} GB | {'' if s is None else f'{s:.1f}'} |")
    lines += ["", "| prediction calls over the whole run | calls | seconds |", "|---|---:|---:|"]
    lines += [f"| {k} | {n} | {sec:.1f} |" for k, (n, sec) in r["calls"].items()]
    return "\n".join(lines)


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-wait", type=float, default=90.0, help="seconds to wait for a quiet machine before starting")
    a = ap.parse_args(argv)
    text = report(run(a.rows, a.epochs, a.max_wait))
    print(text, flush=True)
    return text


if __name__ == "__main__":
    main()
