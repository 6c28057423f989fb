"""Compression targets, each variant measured against the fp32 model of the same run, in the same process.

(a) the quickstart CNN (bundled digits): int8 (ONNX Runtime static QDQ) size and accuracy; 50% structured pruning
    + fine-tune: batch-1 latency and accuracy. Speed ratios compare like with like (ONNX Runtime on both sides);
    the torch-eager fp32 figures are printed too.
(b) distillation on bundled:tweets (real tweets, Android vs iPhone): a fine-tuned MiniLM-L6 teacher against a
    BiLSTM student trained on its soft targets: batch-1 latency and accuracy.

Targets (issue 4): int8 >= 3.5x smaller with <= 1 point accuracy drop; pruned-0.5 >= 1.5x faster at batch 1 with
<= 1 point drop; distilled student >= 5x faster and >= 97% of the teacher's accuracy.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table  # noqa: E402


def _row(v: dict, base: dict, ref: dict, metric: str) -> list:
    return [v["variant"], v["runtime"], f"{v['size_bytes'] / 1e6:.3f}", f"{base['size_bytes'] / v['size_bytes']:.2f}x",
            f"{v[metric]:.4f}", f"{(v[metric] - base[metric]) * 100:+.2f}", f"{v['latency_ms_p50']:.3f}",
            f"{v['latency_ms_p95']:.3f}", f"{ref['latency_ms_p50'] / v['latency_ms_p50']:.2f}x", f"{v['throughput_per_s']:.0f}"]


HEADER = ["variant", "runtime", "MB", "smaller vs fp32", "test acc", "Δ points", "p50 ms", "p95 ms", "faster vs onnx-fp32 (p50)",
          "rows/s @64"]


def quickstart_part(runs: Path, threads: int) -> list[str]:
    from forgeml import api

    tic = time.perf_counter()
    run = api.quickstart(runs_dir=str(runs), quiet=True, tracking_uri="none").run_dir
    train_s = time.perf_counter() - tic
    result = api.compress(run, quiet=True, quantize="int8", prune=[0.5], threads=threads)
    by = {v["variant"]: v for v in result["variants"]}
    fp32, onnx32 = by["fp32"], by["onnx-fp32"]
    print(f"## (a) quickstart CNN: int8 and 50% pruning ({result['test_rows']} test rows, {threads} threads, "
          f"trained in {train_s:.0f} s)\n")
    print(table(HEADER, [_row(v, fp32, onnx32, "test_accuracy") for v in result["variants"]]))
    int8, pruned = by["int8"], by["pruned-0.5"]
    checks = [
        ("int8 size vs fp32", f"{fp32['size_bytes'] / int8['size_bytes']:.2f}x", ">= 3.5x",
         fp32["size_bytes"] / int8["size_bytes"] >= 3.5),
        ("int8 accuracy drop", f"{(fp32['test_accuracy'] - int8['test_accuracy']) * 100:.2f} points", "<= 1 point",
         fp32["test_accuracy"] - int8["test_accuracy"] <= 0.01),
        ("int8 batch-1 speed vs onnx-fp32", f"{onnx32['latency_ms_p50'] / int8['latency_ms_p50']:.2f}x", "report", None),
        ("pruned-0.5 batch-1 speed vs onnx-fp32", f"{onnx32['latency_ms_p50'] / pruned['latency_ms_p50']:.2f}x", ">= 1.5x",
         onnx32["latency_ms_p50"] / pruned["latency_ms_p50"] >= 1.5),
        ("pruned-0.5 accuracy drop (after fine-tune)", f"{(fp32['test_accuracy'] - pruned['test_accuracy']) * 100:.2f} points",
         "<= 1 point", fp32["test_accuracy"] - pruned["test_accuracy"] <= 0.01),
    ]
    return _checks(checks)


def distill_part(runs: Path, threads: int, teacher_epochs: int, student_epochs: int, student: str, labels_only: bool) -> list[str]:
    from forgeml import api

    tic = time.perf_counter()
    cfg = {"name": "tweets-minilm", "runs_dir": str(runs), "tracking": {"uri": "none"},
           "data": {"source": "bundled:tweets", "max_text_tokens": 64},
           "model": {"name": "minilm"},
           "train": {"epochs": teacher_epochs, "batch_size": 32, "lr": 5e-5, "schedule": "cosine", "warmup": 0.1,
                     "early_stopping": None}}
    run = runs / cfg["name"]
    if (run / "manifest.json").is_file():  # --keep DIR: reuse a teacher trained by an earlier run of this script
        print(f"(reusing the teacher in {run})")
    else:
        run = api.train(cfg, quiet=True, overwrite=True).run_dir
    teacher_s = time.perf_counter() - tic
    result = api.compress(run, quiet=True, distill=True, student=student, distill_epochs=student_epochs, threads=threads)
    by = {v["variant"]: v for v in result["variants"]}
    teacher, onnx32, distilled = by["fp32"], by["onnx-fp32"], by["distilled"]
    rows = [_row(v, teacher, onnx32, "test_accuracy") for v in result["variants"]]
    if labels_only:  # the same student trained on the labels alone: what the teacher's soft targets add
        plain = next(v for v in api.compress(run, quiet=True, distill=True, student=student, distill_epochs=student_epochs,
                                             alpha=0.0, threads=threads)["variants"] if v["variant"] == "distilled")
        rows.append(_row({**plain, "variant": "same student, labels only (alpha 0)"}, teacher, onnx32, "test_accuracy"))
    spec, student = student, distilled
    print(f"\n## (b) distillation: MiniLM-L6 teacher -> {spec} student on bundled:tweets ({result['test_rows']} test rows, "
          f"{threads} threads; teacher fine-tuned {teacher_epochs} epochs in {teacher_s:.0f} s, student {student['epochs_run']} "
          f"epochs in {student['seconds']:.0f} s)\n")
    print(table(HEADER, rows))
    print(f"\nparameters: teacher {teacher.get('params', 0):,}, student {student['params']:,}")
    checks = [
        ("student speed vs teacher, ONNX Runtime both (p50)", f"{onnx32['latency_ms_p50'] / student['latency_ms_p50']:.1f}x",
         ">= 5x", onnx32["latency_ms_p50"] / student["latency_ms_p50"] >= 5),
        ("student speed vs teacher in torch (p50)", f"{teacher['latency_ms_p50'] / student['latency_ms_p50']:.1f}x", "report", None),
        ("student accuracy / teacher accuracy", f"{student['test_accuracy'] / teacher['test_accuracy']:.3f}", ">= 0.97",
         student["test_accuracy"] / teacher["test_accuracy"] >= 0.97),
    ]
    return _checks(checks)


def _checks(checks) -> list[str]:
    print()
    print(table(["target", "measured", "goal", "met"], [[n, m, g, "–" if ok is None else ("yes" if ok else "NO")]
                                                        for n, m, g, ok in checks]))
    return [n for n, _, _, ok in checks if ok is False]


def main(argv=None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-distill", action="store_true", help="only part (a)")
    p.add_argument("--skip-quickstart", action="store_true", help="only part (b)")
    p.add_argument("--teacher-epochs", type=int, default=3)
    p.add_argument("--student-epochs", type=int, default=12)
    p.add_argument("--student", default="text:embeddings=minilm,hidden=128",
                   help="student spec (a BiLSTM on MiniLM's pretrained WordPiece embeddings by default)")
    p.add_argument("--labels-only", action="store_true", help="also train the student on labels alone (alpha 0)")
    p.add_argument("--keep", type=Path, help="keep the runs in this folder (and reuse a teacher found there)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"# compression benchmark\n{machine()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.keep or Path(tmp)
        missed = [] if args.skip_quickstart else quickstart_part(runs, args.threads)
        if not args.skip_distill:
            missed += distill_part(runs, args.threads, args.teacher_epochs, args.student_epochs, args.student, args.labels_only)
    print(f"\ntargets missed: {', '.join(missed)}" if missed else "\nall targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
