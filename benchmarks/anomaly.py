"""Anomaly detectors on real data, ADBench-style: ROC-AUC and PR-AUC on a held-out test split, over 10 seeds.

Data sets (scikit-learn's bundled sets; the anomaly class is subsampled with each seed, as ADBench does):

* breast_cancer: the 357 benign tumours are normal; 40 malignant ones drawn at random are the anomalies (10.1 %).
* wine: classes 0 and 1 (130 wines) are normal; 10 wines of class 2 are the anomalies (7.1 %).
* digits: the digits 1-9 (1,617 images as 64 pixel columns) are normal; 33 images of the digit 0 are the anomalies
  (2.0 %): the normal class is itself multi-modal, as in ADBench's "one class against the rest" sets.

Per seed: the anomaly subsample is drawn, rows are split 60/20/20 (train/val/test) stratified on the anomaly label,
numerics are standardized by forgeml's Preprocessor fitted on the training split. Training is unsupervised and the
training split holds its share of anomalies, as real data would. Each detector is fitted on the training split and
scored on the test split (validation rows are set aside for threshold choice and are not used here):

* isolation_forest, lof: forgeml.models.detectors (fit / raw, defaults: 200 trees; 20 neighbours), the baseline;
* autoencoder: forgeml.models.autoencoder (defaults: hidden [64, 16], no dropout) trained by a small Adam loop
  (lr 1e-3, weight decay 1e-5, batch 64, --epochs epochs) on the mean squared reconstruction error;
* deep_svdd: forgeml.models.deep_svdd (defaults: hidden [64, 32], rep_dim 16, He init, no autoencoder pretraining),
  center from the initial network, then the same loop with Ruff et al.'s lr 1e-4 and weight decay 1e-6 on the
  mean squared distance to the center.

The table gives mean +- std over seeds, the best detector per set (by mean ROC-AUC) and each detector's ROC-AUC
as a ratio to isolation_forest's on the same seeds. A JSON of every number is written to --out.

    .venv/bin/python benchmarks/anomaly.py [--seeds 10] [--epochs 50] [--threads 1] [--out anomaly_results.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table  # noqa: E402

DETECTORS = ["isolation_forest", "lof", "autoencoder", "deep_svdd"]
BASELINE = "isolation_forest"


# --------------------------------------------------------------------------------------------- data
def anomaly_set(name: str, seed: int) -> tuple[pd.DataFrame, np.ndarray, str]:
    """(features, is_anomaly 0/1, how it was built) with the anomaly class subsampled by ``seed``."""
    from sklearn import datasets

    rng = np.random.default_rng(seed)
    if name == "breast_cancer":
        bunch = datasets.load_breast_cancer(as_frame=True)
        normal, anomalous, n_anom = bunch.target == 1, bunch.target == 0, 40
        how = "benign normal (357), 40 malignant anomalies"
    elif name == "wine":
        bunch = datasets.load_wine(as_frame=True)
        normal, anomalous, n_anom = bunch.target.isin([0, 1]), bunch.target == 2, 10
        how = "classes 0+1 normal (130), 10 of class 2 anomalies"
    elif name == "digits":
        bunch = datasets.load_digits(as_frame=True)
        normal, anomalous, n_anom = bunch.target != 0, bunch.target == 0, 33
        how = "digits 1-9 normal (1617), 33 zeros anomalies"
    else:
        raise ValueError(name)
    x = bunch.data
    picked = rng.choice(np.flatnonzero(anomalous.to_numpy()), size=n_anom, replace=False)
    rows = np.concatenate([np.flatnonzero(normal.to_numpy()), picked])
    y = np.r_[np.zeros(int(normal.sum()), dtype=np.int64), np.ones(n_anom, dtype=np.int64)]
    return x.iloc[rows].reset_index(drop=True), y, how


def prepared(name: str, seed: int):
    """Split 60/20/20 stratified, standardize on the training split (forgeml's Preprocessor)."""
    from sklearn.model_selection import train_test_split

    from forgeml.config import DataConfig
    from forgeml.features.preprocess import Preprocessor
    from forgeml.data.schema import Feature

    x, y, how = anomaly_set(name, seed)
    idx = np.arange(len(y))
    train, rest = train_test_split(idx, test_size=0.4, stratify=y, random_state=seed)
    val, test = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=seed)
    features = [Feature(str(c), "numeric") for c in x.columns]
    pre = Preprocessor.fit(x.iloc[train], features, DataConfig(source=f"bundled:{name}"))
    split = {k: (pre.transform(x.iloc[i]), y[i]) for k, i in (("train", train), ("val", val), ("test", test))}
    return split, pre.input_shapes(), how


# --------------------------------------------------------------------------------------------- detectors
def train_torch(model, arrays: dict, epochs: int, seed: int, lr: float, weight_decay: float, batch_size: int = 64):
    """A small Adam loop on model.training_loss (forgeml's own loop wiring for detectors is the anomaly task's)."""
    import torch

    tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
    n = len(next(iter(tensors.values())))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=gen).split(batch_size):
            loss = model.training_loss({k: v[idx] for k, v in tensors.items()})
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return model


def score(detector: str, split: dict, shapes: dict, seed: int, epochs: int, threads: int) -> np.ndarray:
    import torch

    from forgeml.models import LEARNERS
    from forgeml.models.autoencoder import AutoencoderParams
    from forgeml.models.deep_svdd import DeepSVDDParams
    from forgeml.models.detectors import IsolationForestParams, LOFParams
    from forgeml.models.inference import predict_raw

    (x_train, _), (x_val, _), (x_test, _) = split["train"], split["val"], split["test"]
    learner = LEARNERS.get(detector)
    if detector in ("isolation_forest", "lof"):
        params = IsolationForestParams() if detector == "isolation_forest" else LOFParams()
        est = learner.fit(params, None, x_train, None, x_val, None, seed, threads, shapes=shapes)
        return learner.raw(est, x_test, None)
    torch.manual_seed(seed)
    if detector == "autoencoder":
        model = learner.build(AutoencoderParams(), shapes, None)
        train_torch(model, x_train, epochs, seed, lr=1e-3, weight_decay=1e-5)
    else:
        model = learner.build(DeepSVDDParams(), shapes, None)
        model.init_center(x_train)
        train_torch(model, x_train, epochs, seed, lr=1e-4, weight_decay=1e-6)
    return predict_raw(model, x_test, device=torch.device("cpu"))


# --------------------------------------------------------------------------------------------- report
def mean_std(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.3f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--epochs", type=int, default=50, help="training epochs of the torch detectors")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sets", default="breast_cancer,wine,digits")
    p.add_argument("--out", type=Path, default=Path("anomaly_results.json"))
    args = p.parse_args(argv)

    import torch
    from sklearn.metrics import average_precision_score, roc_auc_score

    import forgeml.models.autoencoder  # noqa: F401  (registers the detectors until they join LEARNERS' builtin list)
    import forgeml.models.deep_svdd  # noqa: F401
    import forgeml.models.detectors  # noqa: F401

    torch.set_num_threads(args.threads)
    sets = args.sets.split(",")
    results: dict = {"seeds": args.seeds, "epochs": args.epochs, "machine": machine(), "sets": {}}
    start = time.perf_counter()
    for name in sets:
        entry = {"detectors": {d: {"roc_auc": [], "pr_auc": [], "seconds": []} for d in DETECTORS}}
        for seed in range(args.seeds):
            split, shapes, how = prepared(name, seed)
            y_test = split["test"][1]
            entry.update(construction=how, rows={k: len(v[1]) for k, v in split.items()},
                         test_anomalies=int(y_test.sum()), columns=shapes["numeric"])
            for det in DETECTORS:
                t0 = time.perf_counter()
                s = score(det, split, shapes, seed, args.epochs, args.threads)
                r = entry["detectors"][det]
                r["seconds"].append(time.perf_counter() - t0)
                r["roc_auc"].append(float(roc_auc_score(y_test, s)))
                r["pr_auc"].append(float(average_precision_score(y_test, s)))
        entry["prevalence_test"] = entry["test_anomalies"] / entry["rows"]["test"]
        results["sets"][name] = entry
        print(f"{name}: done ({time.perf_counter() - start:.0f} s)", file=sys.stderr)

    print(f"## Anomaly detectors on real data: test ROC-AUC and PR-AUC, mean ± std over {args.seeds} seeds\n")
    print(f"{machine()}; torch detectors: {args.epochs} epochs of Adam, batch 64 (autoencoder lr 1e-3, deep_svdd lr 1e-4)\n")
    rows = []
    for name in sets:
        e = results["sets"][name]
        base = e["detectors"][BASELINE]["roc_auc"]
        for det in DETECTORS:
            r = e["detectors"][det]
            ratio = statistics.mean(a / b for a, b in zip(r["roc_auc"], base))
            rows.append([name, det, mean_std(r["roc_auc"]), mean_std(r["pr_auc"]), f"{ratio:.2f}",
                         f"{statistics.mean(r['seconds']):.2f}"])
    print(table(["data set", "detector", "ROC-AUC", "PR-AUC", "ROC vs IF", "s / fit+score"], rows, "llrrrr"))
    print()
    best = []
    for name in sets:
        e = results["sets"][name]
        means = {d: statistics.mean(e["detectors"][d]["roc_auc"]) for d in DETECTORS}
        pr = {d: statistics.mean(e["detectors"][d]["pr_auc"]) for d in DETECTORS}
        top, top_pr = max(means, key=means.get), max(pr, key=pr.get)
        e["best_roc_auc"], e["best_pr_auc"] = top, top_pr
        best.append([name, e["construction"], f"{e['rows']['train']}/{e['rows']['val']}/{e['rows']['test']}",
                     f"{e['prevalence_test']:.3f}", f"{top} ({means[top]:.3f})", f"{top_pr} ({pr[top_pr]:.3f})"])
    print(table(["data set", "construction", "train/val/test rows", "test anomaly rate (= random PR-AUC)",
                 "best ROC-AUC", "best PR-AUC"], best, "llrrll"))
    total = time.perf_counter() - start
    results["seconds_total"] = total
    print(f"\ntotal {total:.0f} s; numbers in {args.out}")
    args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
