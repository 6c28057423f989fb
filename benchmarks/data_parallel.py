"""Data-parallel training throughput: the same run in one process and in N (`forgeml train --nproc N`, DDP over gloo on
CPUs, NCCL on GPUs), same global batch, seed and epochs. Samples per second = training rows x epochs / the loop's
training seconds (rank 0's clock, data preparation and the report excluded). One process trains with the CPUs it may
use as torch threads; N processes split them (forgeml gives each rank usable CPUs / N threads).

On a 2-core CPU, two processes compete for the same two cores that one process already uses through its threads: the
ratio says what data parallelism costs or gains there, not what it gives on a machine with a core (or GPU) per rank.

    .venv/bin/python benchmarks/data_parallel.py [--nproc 2] [--epochs 3] [--out data_parallel_results.json]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table  # noqa: E402

WORKLOADS = {  # name -> forgeml train arguments
    "CNN on digits (8x8 images, 306k parameters)": ["--data", "bundled:digits", "--model", "cnn", "--batch-size", "64"],
    "MLP on ISLR Default (10,000 rows)": ["--data", "bundled:default", "--model", "mlp", "--batch-size", "256"],
}


def run(args: list[str], nproc: int, runs: Path, name: str, epochs: int) -> dict:
    cmd = [sys.executable, "-m", "forgeml.cli", "train", *args, "--epochs", str(epochs), "--name", name,
           "--runs-dir", str(runs), "--tracking-uri", "none", "--quiet", "--set", "train.early_stopping=null"]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    metrics = json.loads((runs / name / "metrics.json").read_text())
    rows = json.loads((runs / name / "manifest.json").read_text())["data"]["rows"]["train"]
    t = metrics["training"]
    return {"processes": nproc, "threads_per_process": t["threads"], "seconds": t["seconds"], "train_rows": rows,
            "samples_per_s": rows * t["epochs_run"] / t["seconds"], "test": metrics["test"].get("accuracy")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).with_name("data_parallel_results.json")))
    args = ap.parse_args()
    results, rows = {}, []
    with tempfile.TemporaryDirectory(prefix="forgeml-ddp-") as tmp:
        for i, (workload, targs) in enumerate(WORKLOADS.items()):
            one = run(targs, 1, Path(tmp), f"w{i}-1", args.epochs)
            many = run(targs, args.nproc, Path(tmp), f"w{i}-{args.nproc}", args.epochs)
            results[workload] = {"1": one, str(args.nproc): many}
            for r in (one, many):
                rows.append([workload, r["processes"], r["threads_per_process"], f"{r['seconds']:.1f}",
                             f"{r['samples_per_s']:,.0f}", f"{r['test']:.4f}"])
            rows.append([workload, f"{args.nproc} / 1", "", "", f"{many['samples_per_s'] / one['samples_per_s']:.2f}x",
                         f"{many['test'] - one['test']:+.4f}"])
            print(rows[-3:], flush=True)
    print(machine())
    print(table(["workload", "processes", "threads each", "train s", "samples / s", "test accuracy"], rows))
    Path(args.out).write_text(json.dumps({"machine": machine(), "epochs": args.epochs, "results": results}, indent=1))


if __name__ == "__main__":
    main()
