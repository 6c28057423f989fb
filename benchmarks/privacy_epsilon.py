"""Accuracy vs privacy budget: the DP candidates of `model: auto` under train.privacy (linear, shallow_mlp, and the
task's usual network) at epsilon 1, 3 and 8, on bundled digits and on the ISLR Default table, over seeds.

Every run goes through forgeml.api.train with forgeml's DP defaults (train.privacy without other train keys: batch
256, 30 epochs, SGD with momentum 0.9 at lr 0.2, constant rate, no early stopping, per-row clipping 1.0, PRV
accountant, delta 1e-5; the lr was chosen on digits' validation split at epsilon 3 for the linear model) and the
preprocessing privacy asks for: pixels scaled by their known range; on Default, balance and income scaled by
declared bounds ([0, 3000] and [0, 100000], ranges a lender knows without the data), so no statistic of the private
rows enters the model (the student column's two levels are still read from the rows: the report says so). Each
setting is repeated over training seeds (init, Poisson sampling, noise) on one split (digits: quickstart's, val 0.1,
test 0.2; Default: forgeml's 70/15/15, seed 0); the table gives mean and range of the test score. "no DP" rows train
the same model on the same split with the same loop settings, without noise or clipping.

The CNN is slow under DP-SGD on 2 cores (2-9 minutes a run): ``--cnn`` adds it on digits with the same defaults.

    .venv/bin/python benchmarks/privacy_epsilon.py [--seeds 3] [--epsilons 1,3,8] [--threads 2] [--cnn]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEFAULT_THREADS, machine, table  # noqa: E402

SETS = {
    "digits": {"data": {"source": "bundled:digits", "split": {"val": 0.1, "test": 0.2, "seed": 0}}, "metric": "accuracy",
               "models": ["linear", "shallow_mlp"], "bounds": {}},
    "default": {"data": {"source": "bundled:default"}, "metric": "roc_auc", "models": ["linear", "shallow_mlp", "mlp"],
                "bounds": {"balance": [0, 3000], "income": [0, 100000]}},
}
DP_LOOP = {"batch_size": 256, "epochs": 30, "optimizer": "sgd", "momentum": 0.9, "lr": 0.2, "weight_decay": 0.0,
           "schedule": "constant", "early_stopping": None}  # forgeml.config.train.DP_DEFAULTS, for the no-DP rows


def train(name: str, model: str, seed: int, threads: int, runs_dir: str, epsilon=None) -> dict:
    from forgeml import api

    s = SETS[name]
    train_cfg = {"seed": seed, "threads": threads, "device": "cpu"}
    if epsilon is not None:
        train_cfg["privacy"] = {"epsilon": epsilon, "delta": 1e-5, "bounds": s["bounds"]}
    else:
        train_cfg.update(DP_LOOP)
    tic = time.perf_counter()
    run = api.train({"name": f"{name}-{model}-{epsilon}-{seed}", "runs_dir": runs_dir, "tracking": {"uri": "none"},
                     "data": s["data"], "model": {"name": model}, "train": train_cfg}, overwrite=True, quiet=True)
    return {"score": run.metrics["test"][s["metric"]], "accuracy": run.metrics["test"]["accuracy"],
            "privacy": run.metrics.get("privacy"), "seconds": time.perf_counter() - tic,
            "private_preprocessing": run.manifest["data"].get("preparation", {}).get("private_preprocessing")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epsilons", default="1,3,8")
    ap.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    ap.add_argument("--cnn", action="store_true", help="also the CNN on digits (slow)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("privacy_epsilon_results.json")))
    a = ap.parse_args(argv)
    epsilons = [float(e) for e in a.epsilons.split(",")]
    seeds = list(range(a.seeds))
    if a.cnn:
        SETS["digits"]["models"].append("cnn")
    print(f"# accuracy vs epsilon, DP-SGD (Opacus) with forgeml's DP defaults\n{machine()}\n", flush=True)
    results: dict = {}
    rows = []
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, s in SETS.items():
            for model in s["models"]:
                line = [name, model]
                for eps in [*epsilons, None]:
                    runs = [train(name, model, seed, a.threads, tmp, eps) for seed in seeds]
                    results[f"{name}/{model}/{eps}"] = runs
                    scores = [r["score"] for r in runs]
                    for r in runs:
                        if r["privacy"]:
                            worst = max(worst, r["privacy"]["epsilon"] - r["privacy"]["target_epsilon"])
                    print(f"  {name} {model} {'no DP' if eps is None else f'epsilon {eps:g}'}: test {s['metric']} "
                          + ", ".join(f"{v:.4f}" for v in scores)
                          + f" ({statistics.mean(r['seconds'] for r in runs):.0f} s a run)", flush=True)
                    line.append(f"{statistics.mean(scores):.3f} ({min(scores):.3f}–{max(scores):.3f})")
                rows.append([*line[:2], SETS[name]["metric"], *line[2:]])
    print()
    print(table(["data", "model", "test metric", *[f"epsilon {e:g}" for e in epsilons], "no DP"], rows))
    print(f"\nevery DP run spent at most its budget: {worst <= 0} (largest spent - budget: {worst:+.4f}); delta 1e-5; "
          f"mean (range) of {len(seeds)} seeds")
    Path(a.out).write_text(json.dumps({"machine": machine(), "seeds": seeds, "results": results}, indent=1, default=str))
    return 0 if worst <= 0 else 1


if __name__ == "__main__":
    sys.exit(main())
