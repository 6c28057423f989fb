"""LoRA against full fine-tuning: MiniLM-L6 on the bundled tweets (dslabs trump_tweets: Android or iPhone), the same
split, seed, epochs and batch for both, through forgeml.api.train. Each variant trains in a process of its own, which
reports its own peak resident memory; the table gives trainable parameters, peak memory, median seconds per epoch,
test accuracy and ROC-AUC, and the ratios LoRA / full.

Learning rates are each method's usual one (full fine-tuning 5e-5; LoRA 1e-3, as its adapters start at zero and are
small). LoRA trains rank-8 adapters on the attention's query and value projections (PEFT) plus the head, and merges
them into the weights afterwards: the saved model is a plain MiniLM.

    .venv/bin/python benchmarks/lora.py [--epochs 1] [--batch-size 32] [--threads 2] [--out lora_results.json]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEFAULT_THREADS, machine, table  # noqa: E402

VARIANTS = {"full fine-tuning": ({"name": "minilm"}, 5e-5),
            "LoRA r=8 (query, value)": ({"name": "minilm", "lora": {"r": 8, "alpha": 16}}, 1e-3)}

CHILD = """
import json, resource, statistics, sys
from forgeml import api
cfg = json.loads(sys.argv[1])
r = api.train(cfg, quiet=True)
t, h = r.metrics["training"], r.metrics["history"]
print("RESULT " + json.dumps({"trainable": t["trainable_parameters"], "parameters": t["parameters"],
      "epoch_seconds": statistics.median(e["seconds"] for e in h), "train_seconds": t["seconds"],
      "accuracy": r.metrics["test"]["accuracy"], "roc_auc": r.metrics["test"]["roc_auc"],
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    ap.add_argument("--out", default=str(Path(__file__).with_name("lora_results.json")))
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="forgeml-lora-") as tmp:
        for name, (model, lr) in VARIANTS.items():
            cfg = {"name": f"variant{len(results)}", "runs_dir": tmp, "data": {"source": "bundled:tweets"}, "model": model,
                   "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": lr, "threads": args.threads,
                             "early_stopping": None}, "tracking": {"uri": "none"}}
            out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
            results[name] = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
            print(name, results[name], flush=True)
    full, lora = results.values()
    rows = [[name, f"{r['trainable']:,}", f"{r['parameters']:,}", f"{r['peak_rss_mb']:.0f}", f"{r['epoch_seconds']:.0f}",
             f"{r['accuracy']:.4f}", f"{r['roc_auc']:.4f}"] for name, r in results.items()]
    rows.append(["LoRA / full", f"{lora['trainable'] / full['trainable']:.4f}", "", f"{lora['peak_rss_mb'] / full['peak_rss_mb']:.2f}",
                 f"{lora['epoch_seconds'] / full['epoch_seconds']:.2f}", f"{lora['accuracy'] - full['accuracy']:+.4f}",
                 f"{lora['roc_auc'] - full['roc_auc']:+.4f}"])
    print(table(["variant", "trainable parameters", "parameters", "peak RSS MB", "s / epoch", "test accuracy",
                 "test ROC-AUC"], rows))
    Path(args.out).write_text(json.dumps({"machine": machine(), "epochs": args.epochs, "batch_size": args.batch_size,
                                          "threads": args.threads, "results": results}, indent=1))


if __name__ == "__main__":
    main()
