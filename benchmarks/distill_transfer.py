"""Does an unlabelled transfer set make the teacher count? Few labels, many unlabelled texts: a MiniLM-L6 teacher
fine-tuned on LABELLED rows, then `forgeml compress --distill` into a small BiLSTM student twice: on the labelled
training rows alone, and with UNLABELLED other rows (`--transfer FILE`, no label column) labelled by the teacher.
Each distillation also trains its labels-only ablation (alpha 0), so the table shows what the teacher's targets
added with and without the unlabelled rows. All variants are scored on the run's own test split; a TF-IDF +
logistic-regression baseline (the run's own baseline) stands beside them. Sizes, parameters and batch-1 latency
(ONNX Runtime, teacher and student alike) come from the same compress run.

    .venv/bin/python benchmarks/distill_transfer.py [--data tweets|fine_foods] [--seeds 0 1 2]
                                                    [--labelled 1500] [--unlabelled 5000] [--tune]
                                                    [--student SPEC] [--transfer-only] [--out FILE]

``--data``: a bundled text set (``tweets``: Android or iPhone; ``fine_foods``: a product review rated great or
not). Each seed reshuffles which rows are labelled, the split, and every model's initialisation. ``--tune`` adds a
third distillation with the unlabelled rows whose temperature and alpha are chosen on validation
(``compress --tune-distill``: a student per pair of the grid).
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

from _common import machine, table  # noqa: E402

DISTILLED, ALONE = "student distilled, + unlabelled", "student on labels alone, + unlabelled"


def one_seed(args, seed: int) -> dict:
    """Teacher, baseline, and the students of one seed: accuracies plus the sizes and latencies of the pair that
    matters (the teacher in ONNX Runtime, the student distilled with the unlabelled rows)."""
    from forgeml import api
    from forgeml.data.bundled import load_bundled

    df, target = load_bundled(args.data)
    text = [c for c in df.columns if c != target]
    df = df.sample(frac=1, random_state=seed).reset_index(drop=True)
    acc, sizes = {}, {}
    with tempfile.TemporaryDirectory(prefix="forgeml-transfer-") as tmp:
        tmp = Path(tmp)
        df[: args.labelled].to_csv(tmp / "labelled.csv", index=False)
        unlabelled = df[args.labelled: args.labelled + args.unlabelled][text]
        unlabelled.to_csv(tmp / "unlabelled.csv", index=False)
        tic = time.perf_counter()
        run = api.train({"name": "teacher", "runs_dir": str(tmp), "data": {"source": str(tmp / "labelled.csv"), "target": target},
                         "model": {"name": "minilm"}, "tracking": {"uri": "none"},
                         "train": {"epochs": args.teacher_epochs, "lr": 5e-5, "batch_size": 32, "seed": seed}},
                        quiet=True)
        acc["teacher (MiniLM-L6, fine-tuned)"] = run.metrics["test"]["accuracy"]
        acc["baseline (" + run.metrics["baseline"]["name"] + ")"] = run.metrics["baseline"]["test"]["accuracy"]
        passes = (("training rows only", {}), ("+ unlabelled", {"transfer": str(tmp / "unlabelled.csv")}))
        for label, extra in passes[1:] if args.transfer_only else passes:
            result = api.compress(run.run_dir, quiet=True, distill=True, student=args.student,
                                  distill_epochs=args.student_epochs, **extra)
            by = {v["variant"]: v for v in result["variants"]}
            acc[f"student distilled, {label}"] = by["distilled"]["test_accuracy"]
            acc[f"student on labels alone, {label}"] = by["labels-only"]["test_accuracy"]
            print(f"seed {seed}: {label}: {by['distilled']['transfer_rows']} transfer rows, distilled "
                  f"{by['distilled']['test_accuracy']:.4f}, labels alone {by['labels-only']['test_accuracy']:.4f}", flush=True)
        for name, v in (("teacher", by["onnx-fp32"]), ("student", by["distilled"])):
            sizes[name] = {"size_bytes": v["size_bytes"], "latency_ms_p50": v["latency_ms_p50"],
                           "params": by["fp32"].get("params") if name == "teacher" else v.get("params")}
        if args.tune:
            result = api.compress(run.run_dir, quiet=True, distill=True, student=args.student, tune=True,
                                  distill_epochs=args.student_epochs, transfer=str(tmp / "unlabelled.csv"))
            tuned = {v["variant"]: v for v in result["variants"]}["distilled"]
            acc["student distilled, + unlabelled, T and alpha chosen on validation"] = tuned["test_accuracy"]
            print(f"seed {seed}: chose T {tuned['temperature']:g} alpha {tuned['alpha']:g}: {tuned['test_accuracy']:.4f}",
                  [(r["temperature"], r["alpha"], round(r["score"], 4)) for r in tuned["searched"]], flush=True)
        return {"seed": seed, "test_rows": run.manifest["data"]["rows"]["test"], "unlabelled_rows": len(unlabelled),
                "accuracy": acc, "sizes": sizes, "seconds": round(time.perf_counter() - tic, 1)}


def summary(runs: list[dict]) -> tuple[list[list[str]], list[list[str]]]:
    """Mean ± sd over the seeds per variant, and the issue's targets measured on the means."""
    def mean_sd(values):
        return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    rows = []
    for name in runs[0]["accuracy"]:
        m, sd = mean_sd([r["accuracy"][name] for r in runs])
        rows.append([name, f"{m:.4f} ± {sd:.4f}", " ".join(f"{r['accuracy'][name]:.4f}" for r in runs)])
    gain = [100 * (r["accuracy"][DISTILLED] - r["accuracy"][ALONE]) for r in runs]
    share = [r["accuracy"][DISTILLED] / r["accuracy"]["teacher (MiniLM-L6, fine-tuned)"] for r in runs]
    smaller = [r["sizes"]["teacher"]["size_bytes"] / r["sizes"]["student"]["size_bytes"] for r in runs]
    fewer = [r["sizes"]["teacher"]["params"] / r["sizes"]["student"]["params"] for r in runs]
    faster = [r["sizes"]["teacher"]["latency_ms_p50"] / r["sizes"]["student"]["latency_ms_p50"] for r in runs]
    targets = []
    for what, values, goal, fmt, met in (
            ("distilled minus labels-only (+ unlabelled), points", gain, ">= 1", "{:+.2f}", lambda m: m >= 1),
            ("student accuracy / teacher accuracy", share, ">= 0.97", "{:.3f}", lambda m: m >= 0.97),
            ("teacher file / student file (ONNX)", smaller, ">= 10x", "{:.1f}x", lambda m: m >= 10),
            ("teacher params / student params", fewer, "report", "{:.1f}x", None),
            ("student speed vs teacher, batch-1 p50, ONNX Runtime", faster, ">= 5x", "{:.1f}x", lambda m: m >= 5)):
        m, _ = mean_sd(values)
        targets.append([what, fmt.format(m), " ".join(fmt.format(v) for v in values), goal,
                        "–" if met is None else ("yes" if met(m) else "no")])
    return rows, targets


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="tweets", choices=["tweets", "fine_foods"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--labelled", type=int, default=1500)
    ap.add_argument("--unlabelled", type=int, default=5000, help="at most this many of the rows left after the labelled ones")
    ap.add_argument("--teacher-epochs", type=int, default=3)
    ap.add_argument("--student-epochs", type=int, default=30)
    ap.add_argument("--student", default="text:hidden=32,embedding_dim=64")
    ap.add_argument("--transfer-only", action="store_true", help="skip the distillation on the labelled training rows "
                    "alone: two students per seed instead of four (the targets need only the pass with the unlabelled rows)")
    ap.add_argument("--tune", action="store_true", help="also choose T and alpha on validation (--tune-distill)")
    ap.add_argument("--out", default=None, help="default benchmarks/distill_transfer_<data>_results.json")
    args = ap.parse_args()
    out = Path(args.out or Path(__file__).with_name(f"distill_transfer_{args.data}_results.json"))
    runs = []
    for seed in args.seeds:  # saved after every seed, so a long run that is stopped keeps what it measured
        runs.append(one_seed(args, seed))
        out.write_text(json.dumps({"machine": machine(), "args": vars(args), "runs": runs}, indent=1, ensure_ascii=False))
    rows, targets = summary(runs)
    print(machine())
    print(f"bundled:{args.data}: {args.labelled} labelled rows (train/val/test split of them; test {runs[0]['test_rows']} "
          f"rows), {runs[0]['unlabelled_rows']} unlabelled, student {args.student}, seeds {args.seeds}, "
          f"{sum(r['seconds'] for r in runs):.0f} s")
    print(table(["variant", "test accuracy, mean ± sd", "per seed"], rows))
    print(table(["target (mean over seeds)", "measured", "per seed", "goal", "met"], targets))
    out.write_text(json.dumps({"machine": machine(), "args": vars(args), "runs": runs, "summary": rows, "targets": targets},
                              indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
