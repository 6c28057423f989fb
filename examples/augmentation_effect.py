"""What data.augment buys on real data: each modality trained with and without augmentation on the same splits.

- images: bundled:digits with a small training split (a CNN, random crop + rotation);
- text: bundled:tweets (BiLSTM on learned word embeddings, random token deletion + swaps);
- tables: bundled:breast_cancer (MLP, gaussian noise; mixup).

Prints a markdown table of test accuracy (mean ± std over split seeds) and the change against no augmentation.
docs/augmentation.md pastes its output.

    .venv/bin/python examples/augmentation_effect.py [--seeds 3] [--only images,text,tables]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from forgeml import api

EXPERIMENTS = {
    "images": {
        "data": {"source": "bundled:digits", "split": {"val": 0.1, "test": 0.6}},  # ~540 training images
        "model": {"name": "cnn", "channels": [32, 64]},
        "train": {"epochs": 30, "lr": 2e-3, "early_stopping": {"patience": 8}},
        "variants": {"crop 1 px + rotate 10°": {"image": {"crop": 1, "rotate": 10}}},
    },
    "text": {
        "data": {"source": "bundled:tweets"},
        "model": {"name": "text", "hidden": 64, "embedding_dim": 64},
        "train": {"epochs": 6, "lr": 2e-3, "early_stopping": {"patience": 3}},
        "variants": {"delete 0.1 + 1 swap": {"text": {"delete": 0.1, "swap": 1}}},
    },
    "tables": {
        "data": {"source": "bundled:breast_cancer", "split": {"val": 0.15, "test": 0.5}},
        "model": {"name": "mlp", "hidden": [64, 32]},
        "train": {"epochs": 60, "lr": 1e-3, "early_stopping": {"patience": 10}},
        "variants": {"noise 0.1": {"table": {"noise": 0.1}}, "mixup 0.4": {"table": {"mixup": 0.4}}},
    },
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--only", default=",".join(EXPERIMENTS))
    args = ap.parse_args(argv)
    print("| data | augmentation | test accuracy | change vs none | test log-loss | seconds/run |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as runs:
        for what in args.only.split(","):
            exp = EXPERIMENTS[what]
            base_acc = None
            for label, augment in {"none": {}, **exp["variants"]}.items():
                acc, loss, tic = [], [], time.perf_counter()
                for seed in range(args.seeds):
                    data = {**exp["data"], "augment": augment, "split": {**exp["data"].get("split", {}), "seed": seed}}
                    r = api.train(name="a", runs_dir=runs, overwrite=True, quiet=True, data=data, model=exp["model"],
                                  train={**exp["train"], "seed": seed}, tracking={"uri": "none"})
                    acc.append(r.metrics["test"]["accuracy"])
                    loss.append(r.metrics["test"]["log_loss"])
                seconds = (time.perf_counter() - tic) / args.seeds
                base_acc = np.mean(acc) if base_acc is None else base_acc
                change = "–" if label == "none" else f"{100 * (np.mean(acc) - base_acc):+.2f} points"
                print(f"| {exp['data']['source']} | {label} | {np.mean(acc):.4f} ± {np.std(acc):.4f} | {change} | "
                      f"{np.mean(loss):.4f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
