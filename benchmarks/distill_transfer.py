"""Does an unlabelled transfer set make the teacher count? The bundled tweets (Android or iPhone), few labels: a
MiniLM-L6 teacher fine-tuned on LABELLED tweets, then `forgeml compress --distill` into a small BiLSTM student
twice: on the labelled training rows alone, and with UNLABELLED other tweets (`--transfer FILE`, no label column)
labelled by the teacher. Each distillation also trains its labels-only ablation (alpha 0), so the table shows what
the teacher's targets added with and without the unlabelled rows. All variants are scored on the run's own test
split; a TF-IDF + logistic-regression baseline (the run's own baseline) stands beside them.

    .venv/bin/python benchmarks/distill_transfer.py [--labelled 1500] [--unlabelled 5000] [--seed 0] [--tune]

``--tune`` adds a third distillation with the unlabelled tweets whose temperature and alpha are chosen on validation
(``compress --tune-distill``: a student per pair of the grid).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labelled", type=int, default=1500)
    ap.add_argument("--unlabelled", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--teacher-epochs", type=int, default=3)
    ap.add_argument("--student-epochs", type=int, default=30)
    ap.add_argument("--student", default="text:hidden=32,embedding_dim=64")
    ap.add_argument("--tune", action="store_true", help="also choose T and alpha on validation (--tune-distill)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("distill_transfer_results.json")))
    args = ap.parse_args()
    from forgeml import api
    from forgeml.data.bundled import load_bundled

    df, _ = load_bundled("tweets")
    df = df.sample(frac=1, random_state=args.seed).reset_index(drop=True)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="forgeml-transfer-") as tmp:
        tmp = Path(tmp)
        df[: args.labelled].to_csv(tmp / "labelled.csv", index=False)
        df[args.labelled: args.labelled + args.unlabelled][["text"]].to_csv(tmp / "unlabelled.csv", index=False)
        run = api.train({"name": "teacher", "runs_dir": str(tmp), "data": {"source": str(tmp / "labelled.csv"), "target": "source"},
                         "model": {"name": "minilm"}, "tracking": {"uri": "none"},
                         "train": {"epochs": args.teacher_epochs, "lr": 5e-5, "batch_size": 32, "seed": args.seed}},
                        quiet=True)
        test = run.metrics["test"]
        rows["teacher (MiniLM-L6, fine-tuned)"] = test["accuracy"]
        rows[f"baseline ({run.metrics['baseline']['name']})"] = run.metrics["baseline"]["test"]["accuracy"]
        for label, extra in (("training rows only", {}), (f"+ {args.unlabelled} unlabelled tweets", {"transfer": str(tmp / "unlabelled.csv")})):
            result = api.compress(run.run_dir, quiet=True, distill=True, student=args.student,
                                  distill_epochs=args.student_epochs, **extra)
            by = {v["variant"]: v for v in result["variants"]}
            rows[f"student distilled, {label}"] = by["distilled"]["test_accuracy"]
            rows[f"student on labels alone, {label}"] = by["labels-only"]["test_accuracy"]
            print(label, by["distilled"]["transfer_rows"], by["distilled"]["test_accuracy"], by["labels-only"]["test_accuracy"],
                  flush=True)
        if args.tune:
            result = api.compress(run.run_dir, quiet=True, distill=True, student=args.student, tune=True,
                                  distill_epochs=args.student_epochs, transfer=str(tmp / "unlabelled.csv"))
            tuned = {v["variant"]: v for v in result["variants"]}["distilled"]
            label = f"student distilled, + {args.unlabelled} unlabelled tweets, T {tuned['temperature']:g} alpha {tuned['alpha']:g} chosen on validation"
            rows[label] = tuned["test_accuracy"]
            print(label, tuned["test_accuracy"], [(r["temperature"], r["alpha"], round(r["score"], 4)) for r in tuned["searched"]],
                  flush=True)
        n_test = run.manifest["data"]["rows"]["test"]
    print(machine())
    print(f"labelled tweets {args.labelled} (train/val/test split of them; test {n_test} rows), unlabelled {args.unlabelled}, "
          f"student {args.student}, seed {args.seed}")
    print(table(["variant", "test accuracy"], [[k, f"{v:.4f}"] for k, v in rows.items()]))
    Path(args.out).write_text(json.dumps({"machine": machine(), "args": vars(args), "test_rows": n_test,
                                          "accuracy": rows}, indent=1))


if __name__ == "__main__":
    main()
