"""Time to 98% test accuracy on bundled digits: forgeml fit (quickstart settings) vs a plain PyTorch loop.

Both train the quickstart CNN (forgeml.api.QUICKSTART: channels [64, 128], dropout 0.2, 30 epochs max, batch 64,
AdamW lr 2e-3, weight decay 5e-4 on >=2-d weights, linear warmup 10% + cosine decay, grad clip 1.0 (the TrainConfig
default)) from the same seed on the same prepared split. forgeml's fit runs as `forgeml quickstart` runs it:
validation every epoch, early stopping on val_loss (patience 10), a checkpoint per epoch (temp dir), progress=None.
After each epoch the test accuracy is measured (fit: on_epoch callback + forgeml.train.loop.predict_raw on the test
split; plain: the same predict_raw); that measuring time is excluded from both clocks. A run stops at the first
epoch with test accuracy >= 0.98. Runs alternate plain/ours; medians of the repeats (over the quiet runs when there
are at least 3; see QuietGate in _common.py).

    .venv/bin/python benchmarks/time_to_accuracy.py [--repeats 5] [--threads 2] [--target 0.98]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from _common import DEFAULT_THREADS, Meter, PlainLoop, QuietGate, machine, median, n_batches, setup, table


class Reached(Exception):
    pass


def main(argv=None) -> str:
    from forgeml.api import QUICKSTART
    from forgeml.train.loop import fit, predict_raw

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    ap.add_argument("--target", type=float, default=0.98)
    ap.add_argument("--max-wait", type=float, default=90.0, help="total seconds to wait for a quiet machine")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    cfg, data, build = setup({k: v for k, v in QUICKSTART.items() if k != "name"})
    tcfg = cfg.train.model_copy(update={"threads": a.threads, "device": "cpu"})
    x, y, xv, yv = data.enc["train"], data.y["train"], data.enc["val"], data.y["val"]
    xt, yt = data.enc["test"], data.y["test"]

    def test_acc(model) -> float:
        return float((predict_raw(model, xt).argmax(1) == yt).mean())

    def ours():
        model = build(tcfg.seed)
        clock = {"excluded": 0.0, "curve": []}

        def on_epoch(logs):
            t = time.perf_counter()
            elapsed = t - clock["t0"] - clock["excluded"]
            acc = test_acc(model)
            clock["excluded"] += time.perf_counter() - t
            clock["curve"].append((logs["epoch"], elapsed, acc))
            if acc >= a.target:
                raise Reached

        with tempfile.TemporaryDirectory(prefix="forgeml-bench-tta-") as ckpt:
            clock["t0"] = time.perf_counter()
            try:
                fit(model, data.task, x, y, xv, yv, tcfg, checkpoint_dir=Path(ckpt), progress=None, on_epoch=on_epoch)
            except Reached:
                pass
        return clock["curve"]

    def plain():
        model = build(tcfg.seed)
        curve, excluded = [], 0.0
        t0 = time.perf_counter()
        torch.manual_seed(tcfg.seed)  # fit re-seeds before training; do the same so dropout draws match
        total_steps = n_batches(len(y), tcfg.batch_size) * tcfg.epochs
        loop = PlainLoop(model, x, y, tcfg.batch_size, tcfg.lr, tcfg.weight_decay, seed=tcfg.seed, grad_clip=tcfg.grad_clip,
                         schedule=(total_steps, tcfg.warmup), decay_groups=True)
        for epoch in range(tcfg.epochs):
            loop.epoch()
            t = time.perf_counter()
            acc = test_acc(model)
            curve.append((epoch, t - t0 - excluded, acc))
            excluded += time.perf_counter() - t
            if acc >= a.target:
                break
        return curve

    # warm-up (oneDNN kernels, lazy imports): one epoch of each, not timed
    PlainLoop(build(), x, y, tcfg.batch_size, tcfg.lr, tcfg.weight_decay).epoch()
    fit(build(), data.task, x, y, xv, yv, tcfg.model_copy(update={"epochs": 1}), progress=None)
    gate = QuietGate(budget=a.max_wait)
    res, loads = {"plain": [], "ours": []}, {"plain": [], "ours": []}
    for r in range(a.repeats):
        for what in (("plain", "ours") if r % 2 == 0 else ("ours", "plain")):
            torch.set_num_threads(a.threads)
            gate.wait()
            with Meter() as m:
                res[what].append(plain() if what == "plain" else ours())
            loads[what].append(m.other)

    def reach(curve):
        return next(((e, s, acc) for e, s, acc in curve if acc >= a.target), None)

    rows, summary = [], {}
    for what, label in (("plain", "plain PyTorch loop"), ("ours", "forgeml fit (quickstart)")):
        hits = [reach(c) for c in res[what]]
        ok = [(h, load) for h, load in zip(hits, loads[what]) if h]
        secs, quiet = gate.pick([(h[1], load) for h, load in ok]) if ok else ([float("nan")], "-")
        summary[what] = median(secs)
        epochs = sorted({h[0] + 1 for h, _ in ok})
        best = max(acc for c in res[what] for _, _, acc in c)
        rows.append([label, f"{len(ok)}/{len(hits)}", ",".join(map(str, epochs)) or "-",
                     f"{summary[what]:.2f}" if ok else "not reached", f"{min(secs):.2f}-{max(secs):.2f}" if ok else "-",
                     f"{best:.4f}", quiet])
    ratio = summary["ours"] / summary["plain"]
    rows.append(["ratio ours/plain (time; lower is better)", "", "", f"{ratio:.3f}", "", "", ""])
    text = "\n".join([
        f"## time_to_accuracy: seconds until test accuracy >= {a.target} on digits (median of {a.repeats})",
        f"machine: {machine()}",
        f"digits: {len(y)} train / {len(yv)} val / {len(yt)} test rows; quickstart recipe on both sides",
        "",
        f"quiet run = other processes used < {gate.threshold} core while it ran; medians over quiet runs when >= 3 "
        f"(waited {gate.waited:.0f} s for quiet)",
        "",
        table(["loop", "runs reaching target", "epoch reached", "median seconds", "min-max s", "best test acc seen",
               "quiet runs"], rows),
        "",
        "per-epoch test accuracy of the first repeat (epoch: plain / ours): "
        + ", ".join(f"{p[0] + 1}: {p[2]:.3f}/{o[2]:.3f}" for p, o in zip(res["plain"][0], res["ours"][0])),
    ])
    print(text, flush=True)
    return text


if __name__ == "__main__":
    main()
