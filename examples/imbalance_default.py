"""Class imbalance on real data: every data.balance method on ISLR Default (~3% of customers default).

Trains the same MLP on the same splits with each method and prints a markdown table of the minority class's
precision, recall and F1 (at the decision rule each method ends with) and PR-AUC, as the mean over split seeds.
docs/imbalance.md pastes its output.

    .venv/bin/python examples/imbalance_default.py [--seeds 3] [--epochs 30] [--only none smote generative]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from forgeml import api

SETTINGS = [
    ("none", {"method": "none"}),
    ("class_weights", {"method": "class_weights"}),
    ("oversample", {"method": "oversample"}),
    ("undersample", {"method": "undersample"}),
    ("smote", {"method": "smote"}),
    ("generative (conditional VAE)", {"method": "generative"}),
    ("focal (gamma 2)", {"method": "focal"}),
    ("none + threshold (F1 on val)", {"method": "none", "threshold": "f1"}),
    ("none + threshold (recall 0.8 on val)", {"method": "none", "threshold": "recall", "target_recall": 0.8}),
]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="split seeds to average over")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--only", nargs="+", metavar="SETTING",
                    help="run these settings only (the first word of each label: none, smote, generative, ...)")
    args = ap.parse_args(argv)
    settings = [s for s in SETTINGS if not args.only or s[0].split(" ")[0] in args.only]
    rows = []
    with tempfile.TemporaryDirectory() as runs:
        for label, balance in settings:
            scores, tic = [], time.perf_counter()
            for seed in range(args.seeds):
                r = api.train(name=f"s{seed}", runs_dir=runs, overwrite=True, quiet=True,
                              data={"source": "bundled:default", "balance": {**balance, "seed": seed},
                                    "split": {"seed": seed}},
                              model={"name": "mlp"}, train={"epochs": args.epochs, "seed": seed}, tracking={"uri": "none"})
                test = r.metrics["test"]
                detect = r.manifest["data"]["preparation"]["balance"].get("detectability_roc_auc") if balance["method"] != "none" else None
                if detect is not None:
                    print(f"{label} seed {seed}: real vs synthetic minority rows, classifier ROC-AUC {detect}")
                yes = test["per_class"]["Yes"]
                scores.append([yes["precision"], yes["recall"], yes["f1"], test["pr_auc"], test["roc_auc"], test["accuracy"]])
            rows.append((label, np.mean(scores, axis=0), np.std(scores, axis=0), time.perf_counter() - tic))
    base_f1 = rows[0][1][2]
    print(f"ISLR Default, MLP, test split (1,500 rows, ~50 defaults) — mean ± std over {args.seeds} split seeds\n")
    print("| method | precision (Yes) | recall (Yes) | F1 (Yes) | F1 vs none | PR-AUC | ROC-AUC | accuracy |")
    print("|---|---|---|---|---|---|---|---|")
    for label, mean, std, _ in rows:
        cells = [f"{m:.3f} ± {s:.3f}" for m, s in zip(mean, std)]
        print(f"| {label} | {cells[0]} | {cells[1]} | {cells[2]} | {mean[2] / base_f1:.2f}x | {cells[3]} | {cells[4]} | {cells[5]} |")
    print(f"\nseconds per setting ({args.seeds} runs): " + ", ".join(f"{label.split(' ')[0]} {t:.0f}" for label, _, _, t in rows))


if __name__ == "__main__":
    main()
