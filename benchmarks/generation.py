"""Image generation on the bundled digits (1,797 8x8 images): forgeml's GAN and VAE against the Gaussian-mixture
baseline beside every run, on the Frechet distance and KID in the features of the run's own scoring classifier (NOT
Inception FID: forgeml.evaluate.feature_net), plus precision/recall and coverage, on the test split.

Per seed (the split and training seed): ``api.train`` with ``task: generation`` and ``--model gan``, then ``--model
vae``, each with the family's default settings (one CPU thread per run: small networks on a shared machine); the
baseline (a scikit-learn GaussianMixture on the training pixels,
its number of components chosen by validation log-likelihood) is the same for both runs of a seed (same split, same
scorer) and is read from the first model's run. Means over the seeds; ratios are model / baseline (below 1: the model is
closer to the real test images than the mixture is).

    .venv/bin/python benchmarks/generation.py [--seeds 3] [--conditional] [--models gan vae] [--out generation_results.json]
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

KEYS = ("frechet_distance", "kid", "precision", "recall", "coverage", "class_accuracy")


def run(runs: Path, model: str, seed: int, conditional: bool) -> dict:
    from forgeml import api

    tic = time.perf_counter()
    result = api.train({"name": f"{model}-{seed}", "runs_dir": str(runs), "data": {"source": "bundled:digits",
                        "split": {"seed": seed}}, "task": {"name": "generation", "conditional": conditional},
                        "model": {"name": model}, "train": {"seed": seed, "threads": 1},
                        "tracking": {"uri": "none"}},
                       quiet=True, overwrite=True)
    m = result.metrics
    return {"test": {k: m["test"].get(k) for k in KEYS}, "baseline": {k: m["baseline"]["test"].get(k) for k in KEYS},
            "epochs": m["training"]["epochs_run"], "best_epoch": m["training"]["best_epoch"] + 1,
            "seconds": round(time.perf_counter() - tic, 1)}


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def fmt(v, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--conditional", action="store_true", help="class-conditional GAN and VAE (and mixtures)")
    parser.add_argument("--models", nargs="+", choices=("gan", "vae"), default=["gan", "vae"],
                        help="which generators to train (the mixture baseline is read from the first)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("generation_results.json")))
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    results: dict = {"machine": machine(), "seeds": seeds, "conditional": args.conditional, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for model in args.models:
                results["runs"][f"{model}-{seed}"] = r = run(Path(tmp), model, seed, args.conditional)
                print(f"{model} seed {seed}: FD {r['test']['frechet_distance']:.3f} vs mixture "
                      f"{r['baseline']['frechet_distance']:.3f} ({r['epochs']} epochs, {r['seconds']} s)", file=sys.stderr)
    runs = results["runs"]
    rows, summary = [], {}
    base = {k: mean(runs[f"{args.models[0]}-{s}"]["baseline"][k] for s in seeds) for k in KEYS}
    for name in (*args.models, "gaussian mixture (baseline)"):
        got = base if name.startswith("gaussian") else {k: mean(runs[f"{name}-{s}"]["test"][k] for s in seeds) for k in KEYS}
        summary[name] = got
        ratio = lambda k: "1.00" if got is base else fmt(got[k] / base[k], 2)  # noqa: E731
        rows.append([name, fmt(got["frechet_distance"]), ratio("frechet_distance"), fmt(got["kid"], 4), ratio("kid"),
                     fmt(got["precision"]), fmt(got["recall"]), fmt(got["coverage"]),
                     *([fmt(got["class_accuracy"])] if args.conditional else [])])
    results["summary"] = summary
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"machine: {results['machine']}; seeds {seeds}; digits test split (270 images), "
          f"{'class-conditional' if args.conditional else 'unconditional'}\n")
    print(table(["model", "Frechet distance", "ratio to mixture", "KID", "ratio to mixture", "precision", "recall",
                 "coverage", *(["class accuracy"] if args.conditional else [])], rows))
    per_seed = [[k, fmt(r["test"]["frechet_distance"]), fmt(r["baseline"]["frechet_distance"]), fmt(r["test"]["kid"], 4),
                 fmt(r["baseline"]["kid"], 4), r["epochs"], r["best_epoch"], r["seconds"]] for k, r in runs.items()]
    print()
    print(table(["run", "FD", "mixture FD", "KID", "mixture KID", "epochs", "best epoch", "seconds"], per_seed))


if __name__ == "__main__":
    main()
