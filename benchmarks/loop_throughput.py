"""Training throughput (samples/s) of forgeml's `fit` vs a plain hand-written PyTorch loop.

Same model (built by forgeml from the same seed), same prepared data, batch size, epochs, optimizer (AdamW, same lr
and weight decay), torch thread count, fp32 on CPU. forgeml's fit runs with schedule=constant and grad_clip=None so
the two do the same arithmetic per step; early_stopping=None, progress=None.

  (a) end-to-end: our fit() call as a user pays for it, i.e. including its per-epoch validation pass, best-state copy
      and checkpoint (written to a temp dir), vs the plain loop (which does none of that).
  (b) train steps only: the training phase of each epoch (randperm + all steps) on both sides; for fit it is timed by a
      `progress` object (fit calls it after the last batch and after each epoch), checkpoint_dir=None. The median is
      taken over all epochs of all (quiet) runs, which is robust to a burst of load during one epoch.

Runs alternate (plain, ours-a, ours-b, then the reverse order, ...) after one warm-up each; medians of the repeats.
The machine may be shared: each run waits (within a total budget) for other processes to go quiet, records the load
they put on the CPUs while it ran, and the medians use the quiet runs when there are at least 3 (see _common.py).

    .venv/bin/python benchmarks/loop_throughput.py [--repeats 5] [--threads 2] [--no-mlp]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from _common import DEFAULT_THREADS, Meter, PlainLoop, QuietGate, TrainPhaseTimer, machine, median, setup, spread, table

TARGET = 0.95

CASES = {
    "cnn/digits": dict(
        config={"data": {"source": "bundled:digits", "split": {"val": 0.1, "test": 0.2, "seed": 0}},
                "model": {"name": "cnn", "channels": [64, 128], "dropout": 0.2}},
        epochs=3, batch_size=64, lr=2e-3, weight_decay=5e-4,
    ),
    "mlp/breast_cancer": dict(
        config={"data": {"source": "bundled:breast_cancer"}, "model": {"name": "mlp"}},
        epochs=30, batch_size=64, lr=1e-3, weight_decay=1e-4,
    ),
}


def bench_case(name: str, case: dict, repeats: int, threads: int, gate: QuietGate) -> tuple[list[list], str]:
    from forgeml.train.loop import fit

    cfg, data, build = setup(case["config"])
    tcfg = cfg.train.model_copy(update=dict(
        epochs=case["epochs"], batch_size=case["batch_size"], lr=case["lr"], weight_decay=case["weight_decay"],
        schedule="constant", grad_clip=None, early_stopping=None, threads=threads, precision="fp32", device="cpu"))
    x, y, xv, yv = data.enc["train"], data.y["train"], data.enc["val"], data.y["val"]

    def plain(epochs: int):
        model = build()
        tic = time.perf_counter()
        loop = PlainLoop(model, x, y, tcfg.batch_size, tcfg.lr, tcfg.weight_decay, seed=tcfg.seed)
        train_s = []
        for _ in range(epochs):
            t = time.perf_counter()
            loop.epoch()
            train_s.append(time.perf_counter() - t)
        return time.perf_counter() - tic, train_s, loop.samples_per_epoch()

    def ours_e2e(epochs: int):
        model = build()
        with tempfile.TemporaryDirectory(prefix="forgeml-bench-ckpt-") as ckpt:
            tic = time.perf_counter()
            fit(model, data.task, x, y, xv, yv, tcfg.model_copy(update={"epochs": epochs}),
                checkpoint_dir=Path(ckpt), progress=None)
            return time.perf_counter() - tic

    def ours_steps(epochs: int):
        model, timer = build(), TrainPhaseTimer()
        fit(model, data.task, x, y, xv, yv, tcfg.model_copy(update={"epochs": epochs}), checkpoint_dir=None, progress=timer)
        return timer.train_s

    torch.set_num_threads(threads)
    plain(1), ours_e2e(1), ours_steps(1)  # warm-up (oneDNN kernels, lazy imports, allocator)
    E = tcfg.epochs
    per_epoch = plain(1)[2]  # samples per epoch (both loops run the same batches)
    samples = per_epoch * E
    runs = {"plain_e2e": [], "plain_steps": [], "ours_e2e": [], "ours_steps": []}
    for r in range(repeats):
        order = ["plain", "ours_e2e", "ours_steps"]
        for what in order if r % 2 == 0 else order[::-1]:
            torch.set_num_threads(threads)
            gate.wait()
            with Meter() as m:
                if what == "plain":
                    e2e, steps, _ = plain(E)
                elif what == "ours_e2e":
                    e2e = ours_e2e(E)
                else:
                    steps = ours_steps(E)
            if what in ("plain", "ours_e2e"):
                runs["plain_e2e" if what == "plain" else "ours_e2e"].append((samples / e2e, m.other))
            if what in ("plain", "ours_steps"):  # per-epoch train-phase seconds, pooled over runs below
                runs["plain_steps" if what == "plain" else "ours_steps"].append((steps, m.other))

    rows = []
    for label, mine, base in (("(a) end-to-end (ours: + val + checkpoint each epoch)", "ours_e2e", "plain_e2e"),
                              ("(b) train steps only", "ours_steps", "plain_steps")):
        (mv, mq), (bv, bq) = gate.pick(runs[mine]), gate.pick(runs[base])
        if mine == "ours_steps":  # median over all epochs of the kept runs: robust to a burst in one epoch
            mv, bv = ([per_epoch / t for ts in v for t in ts] for v in (mv, bv))
        m, b = median(mv), median(bv)
        rows.append([name, label, f"{b:,.0f} ({spread(bv)})", f"{m:,.0f} ({spread(mv)})", f"{m / b:.3f}",
                     "ok" if m / b >= TARGET else "BELOW", f"{bq} / {mq}"])
    # where (a)'s extra time per epoch goes: the pieces of fit's per-epoch validation and checkpoint, timed alone
    train_ms = median([t for ts in gate.pick(runs["ours_steps"])[0] for t in ts]) * 1e3
    gate.wait()
    with Meter() as m:
        parts = epoch_overheads(build, data, tcfg)
    note = (f"{name}: {len(y)} train rows, batch {tcfg.batch_size}, {E} epochs/run, {len(yv)} val rows; per epoch: "
            f"train phase {train_ms:.0f} ms, " + ", ".join(f"{k} {v:.1f} ms" for k, v in parts.items())
            + ("" if m.other < gate.threshold else f" (timed while other processes used {m.other:.1f} cores)"))
    return rows, note


def epoch_overheads(build, data, tcfg, reps: int = 15) -> dict[str, float]:
    """Median ms of what fit does per epoch besides training: validation forward, validation metrics, checkpoint."""
    from forgeml.artifacts import save_tensors
    from forgeml.train import checkpoint
    from forgeml.train.loop import predict_raw
    from forgeml.train.optim import make_optimizer, make_schedule
    from forgeml.precision import grad_scaler

    model, task, xv, yv = build(), data.task, data.enc["val"], data.y["val"]
    opt = make_optimizer(model, tcfg)
    xb = {k: torch.from_numpy(v[:tcfg.batch_size]) for k, v in data.enc["train"].items()}
    task.loss(model(xb), torch.from_numpy(data.y["train"][:tcfg.batch_size])).backward()
    opt.step()  # so the optimizer has its state, as in a real checkpoint
    sched, scaler, gen = make_schedule(opt, tcfg, 100), grad_scaler("fp32", torch.device("cpu")), torch.Generator()
    raw = predict_raw(model, xv, max(512, tcfg.batch_size))

    def ms(fn) -> float:
        fn()
        ts = []
        for _ in range(reps):
            tic = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - tic)
        return median(ts) * 1e3

    with tempfile.TemporaryDirectory(prefix="forgeml-bench-ckpt-") as d:
        d = Path(d)
        history = [{"epoch": i, "train_loss": 0.1, "val_loss": 0.1, "val_accuracy": 0.9} for i in range(tcfg.epochs)]
        return {
            "val forward (predict_raw)": ms(lambda: predict_raw(model, xv, max(512, tcfg.batch_size))),
            "val metrics (task.metrics)": ms(lambda: task.metrics(yv, task.outputs(raw))),
            "checkpoint + best weights": ms(lambda: (
                save_tensors(d / checkpoint.BEST, {k: v.detach().clone() for k, v in model.state_dict().items()}),
                checkpoint.save(d, model, opt, sched, scaler, gen, {"epoch": 0, "history": history}))),
        }


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    ap.add_argument("--no-mlp", action="store_true")
    ap.add_argument("--max-wait", type=float, default=60.0, help="total seconds to wait for a quiet machine")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows, notes, gate = [], [], QuietGate(budget=a.max_wait)
    for name, case in CASES.items():
        if a.no_mlp and name.startswith("mlp"):
            continue
        r, note = bench_case(name, case, a.repeats, a.threads, gate)
        rows += r
        notes.append(note)
    text = "\n".join([
        f"## loop_throughput: forgeml fit vs plain PyTorch loop (samples/s; median of {a.repeats} alternating runs; "
        "brackets: min-max over runs for (a), over epochs for (b))",
        f"machine: {machine()}",
        *notes,
        f"quiet run = other processes used < {gate.threshold} core while it ran; medians over quiet runs when >= 3 "
        f"(waited {gate.waited:.0f} s for quiet)", "",
        table(["model/data", "measure", "plain loop", "forgeml fit", "ratio ours/plain", f"target >= {TARGET}",
               "quiet runs plain / ours"], rows, "llrrrll"),
    ])
    print(text, flush=True)
    return text


if __name__ == "__main__":
    main()
