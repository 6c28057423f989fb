"""Accuracy vs privacy budget on bundled digits: DP-SGD (Opacus) at epsilon 1, 3 and 8 against the same CNN without DP.

Every setting trains through forgeml.api.train on the same split (quickstart's: val 0.1, test 0.2, seed 0) and is
scored on the 360-row test split; each is repeated over training seeds (model init, Poisson sampling, noise) and the
table gives the mean and the range. The baseline row ("no DP") is the same small CNN (channels [16, 32], BatchNorm
kept) trained as usual: AdamW lr 2e-3, batch 64, 30 epochs, cosine schedule, early stopping on val_loss.

DP rows (settings chosen on the validation split at epsilon 3, then kept for every epsilon): the CNN with BatchNorm
replaced by GroupNorm (done by forgeml), dropout 0, batch 256 (sample rate 0.2), 30 epochs (150 steps), AdamW
lr 0.03 with cosine decay, no weight decay, per-row clipping norm 0.3, delta 1e-5, PRV accountant, no early stopping
(the epoch with the best val_loss is kept, as always).

    .venv/bin/python benchmarks/privacy_epsilon.py [--seeds 3] [--epsilons 1,3,8] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEFAULT_THREADS, machine, table  # noqa: E402

DATA = {"source": "bundled:digits", "split": {"val": 0.1, "test": 0.2, "seed": 0}}
NO_DP = {"model": {"name": "cnn", "channels": [16, 32], "dropout": 0.2},
         "train": {"epochs": 30, "batch_size": 64, "lr": 2e-3, "weight_decay": 5e-4, "schedule": "cosine", "warmup": 0.1,
                   "early_stopping": {"monitor": "val_loss", "patience": 10}}}
DP = {"model": {"name": "cnn", "channels": [16, 32], "dropout": 0.0},
      "train": {"epochs": 30, "batch_size": 256, "optimizer": "adamw", "lr": 0.03, "weight_decay": 0.0, "schedule": "cosine",
                "early_stopping": None}}


def train(setting: dict, seed: int, threads: int, runs_dir: str, epsilon=None) -> dict:
    from forgeml import api

    train_cfg = {**setting["train"], "seed": seed, "threads": threads, "device": "cpu"}
    if epsilon is not None:
        train_cfg["privacy"] = {"epsilon": epsilon, "delta": 1e-5, "max_grad_norm": 0.3}
    name = f"eps{epsilon}-seed{seed}" if epsilon else f"nodp-seed{seed}"
    tic = time.perf_counter()
    run = api.train({"name": name, "runs_dir": runs_dir, "tracking": {"uri": "none"}, "data": DATA, "model": setting["model"],
                     "train": train_cfg}, overwrite=True, quiet=True)
    return {"accuracy": run.metrics["test"]["accuracy"], "privacy": run.metrics.get("privacy"),
            "train_seconds": run.metrics["training"]["seconds"], "seconds": time.perf_counter() - tic}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epsilons", default="1,3,8")
    ap.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    a = ap.parse_args(argv)
    epsilons = [float(e) for e in a.epsilons.split(",")]
    seeds = list(range(a.seeds))
    print(f"# accuracy vs epsilon, bundled:digits (DP-SGD with Opacus)\n{machine()}\n", flush=True)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for eps in [None, *epsilons]:
            results[eps] = []
            for seed in seeds:
                r = train(NO_DP if eps is None else DP, seed, a.threads, tmp, eps)
                results[eps].append(r)
                spent = f", epsilon spent {r['privacy']['epsilon']:.3f}" if r["privacy"] else ""
                print(f"  {'no DP' if eps is None else f'epsilon {eps:g}'} seed {seed}: test accuracy {r['accuracy']:.4f}"
                      f"{spent} ({r['train_seconds']:.0f} s training)", flush=True)

    ref = statistics.mean(r["accuracy"] for r in results[None])
    rows = []
    for eps, runs in results.items():
        accs = [r["accuracy"] for r in runs]
        mean = statistics.mean(accs)
        p = runs[0]["privacy"]
        rows.append(["no DP (same CNN, BatchNorm)" if eps is None else f"DP-SGD, epsilon {eps:g}",
                     "–" if p is None else f"{max(r['privacy']['epsilon'] for r in runs):.3f}",
                     "–" if p is None else f"{p['noise_multiplier']:.2f}",
                     "–" if p is None else str(p["steps"]),
                     f"{mean:.3f}", f"{min(accs):.3f}–{max(accs):.3f}", f"{mean / ref:.2f}x",
                     f"{statistics.mean(r['train_seconds'] for r in runs):.0f}"])
    print()
    print(table(["setting", "epsilon spent (max)", "noise multiplier", "steps", f"test accuracy (mean of {len(seeds)})",
                 "range", "vs no DP", "train s"], rows))
    worst = max((r["privacy"]["epsilon"] - r["privacy"]["target_epsilon"] for runs in results.values() for r in runs
                 if r["privacy"]), default=0.0)
    print(f"\nevery DP run spent at most its budget: {worst <= 0} (largest spent - budget: {worst:+.4f}); delta 1e-5")
    return 0 if worst <= 0 else 1


if __name__ == "__main__":
    sys.exit(main())
