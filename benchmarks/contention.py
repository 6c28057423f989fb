"""Training on a busy machine: the slow-down when other processes keep every core busy, with forgeml's thread choice
(train.threads unset: forgeml.train.threads) against torch's own (as many threads as cores), same run otherwise.

The run: the default MLP on bundled ISLR Default (10,000 rows), 10 epochs without early stopping, the whole
`forgeml.api.train` timed; with `--model ensemble`, model auto's bagged tree ensemble on the same table (its trees
take one thread on a table this small, forgeml.cpus.threads_for_table, against every core). "Busy": one pure-Python busy loop per core, started before and killed after each run.
Target (issue 13): at most 2x slower busy than quiet.

    .venv/bin/python benchmarks/contention.py [--epochs 10] [--repeats 1] [--model mlp|ensemble]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402


def train_seconds(threads, epochs: int, runs_dir: str, model: str = "mlp") -> tuple[float, float, object]:
    from forgeml import api

    train = {"epochs": epochs, "early_stopping": None, **({"threads": threads} if threads else {})}
    tic = time.perf_counter()
    r = api.train({"name": "busy", "runs_dir": runs_dir, "data": {"source": "bundled:default"}, "model": {"name": model},
                   "train": train, "tracking": {"uri": "none"}}, quiet=True, overwrite=True)
    used = r.metrics["training"]["threads"] if "training" in r.metrics else (threads or "1 (small table)")
    return time.perf_counter() - tic, r.metrics["test"]["roc_auc"], used


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--model", default="mlp", choices=["mlp", "ensemble"])
    args = p.parse_args(argv)
    from forgeml.train.threads import usable_cpus

    cores = usable_cpus()
    print(f"# training under contention: {args.model}\n{cores} usable CPUs, load average before {os.getloadavg()[0]:.2f}\n", flush=True)
    every = "torch's own" if args.model == "mlp" else "every core"
    choices = {"forgeml's choice (threads unset)": None, f"{every} ({cores} threads)": cores}
    rows, ratios = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        train_seconds(None, 1, tmp, args.model)  # warm-up: imports, data cache
        for label, threads in choices.items():
            timings = {}
            for busy in (0, cores):
                hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
                try:
                    runs = [train_seconds(threads, args.epochs, tmp, args.model) for _ in range(args.repeats)]
                finally:
                    for h in hogs:
                        h.kill()
                        h.wait()
                seconds = min(r[0] for r in runs)
                timings[busy] = seconds
                rows.append([label, runs[0][2], "busy" if busy else "quiet", f"{seconds:.2f}", f"{runs[0][1]:.4f}"])
            ratios[label] = timings[cores] / timings[0]
            print(f"{label}: done", flush=True)
    print(table(["threads", "trained with", "machine", "seconds", "test roc_auc"], rows))
    quiet_best = min(float(r[3]) for r in rows if r[2] == "quiet")
    print()
    checks = [[label, f"{ratio:.2f}x", "<= 2x", "yes" if ratio <= 2 else "NO"] for label, ratio in ratios.items()]
    print(table(["slow-down busy / quiet", "measured", "goal", "met"], checks))
    busy_ours = next(float(r[3]) for r in rows if r[0].startswith("forgeml") and r[2] == "busy")
    busy_torch = next(float(r[3]) for r in rows if r[0].startswith(every) and r[2] == "busy")
    print(f"\nbusy: {every} / forgeml's choice = {busy_torch / busy_ours:.2f}x; quiet fastest {quiet_best:.2f} s")
    return 0 if ratios["forgeml's choice (threads unset)"] <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
