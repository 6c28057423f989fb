"""The forecasting networks' intervals: their own quantile outputs, conformalized (CQR), against split conformal
intervals around the same forecasts, and what ``task.intervals: auto`` (the default) picks between them on the
validation windows, measured side by side in one run on the bundled series of benchmarks/forecasting.py.

For each data set and network (N-BEATS, the LSTM), ``api.train`` with ``--model NET`` (``quantiles: true``, the
default), the same seed and windows (W = 2): once with ``task.intervals: auto``, once forcing the kind auto did not
pick (the quantile head trains after the network, on its forecasts: both runs' forecasts are the same). The test windows are
the last W x H points of each series, which nothing fitted on or chose by. Reported per run, on those test points:
MASE, the weighted quantile loss over the median and the intervals' ends (lower is better: it rewards narrow
intervals that still cover), the coverage of the 80% and 95% intervals (the target: 70% to 90% for the 80% one),
and the mean width of the 80% interval over the series' MASE scale.

    .venv/bin/python benchmarks/forecast_quantiles.py [--sets air_passengers,nottem] [--nets nbeats,lstm]
                                                      [--out forecast_quantiles_results.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table  # noqa: E402
from forecasting import SETS, WINDOWS  # noqa: E402

KINDS = ("quantile", "conformal")


def run(runs: Path, name: str, net: str, intervals: str) -> dict:
    from forgeml import api

    tic = time.perf_counter()
    result = api.train({"name": f"{name}-{net}-{intervals}", "runs_dir": str(runs), "data": {"source": f"bundled:{name}"},
                        "task": {"name": "forecasting", "windows": WINDOWS, "intervals": intervals},
                        "model": {"name": net}, "tracking": {"uri": "none"}}, quiet=True, overwrite=True)
    seconds = time.perf_counter() - tic
    test = result.metrics["test"]
    return {"mase": test["mase"], "wql": test["wql"], "coverage_80": test["coverage_80"],
            "coverage_95": test["coverage_95"], "width_80": width_80(result.run_dir), "points": test["n"],
            "intervals": result.metrics["intervals"], "seconds": round(seconds, 1)}


def width_80(run_dir) -> float:
    """The mean width of the 80% interval over the series' MASE scale, on the run's test windows."""
    from forgeml import load
    from forgeml.evaluate.forecast import mase_scale
    from forgeml.tasks.forecast_backtest import backtest_origins

    model = load(run_dir)
    panel, _ = model.read_history(model.frame(model.config().data.source))
    h, w = model.horizon, int(model.state["windows"])
    origins = [backtest_origins(len(s.values), h, w, "test") for s in panel.series]
    contexts = model.contexts_of(panel, {}, origins)
    scales = np.repeat([mase_scale(s.values[:o[0]], model.state["season"]) for s, o in zip(panel.series, origins)], w)
    lo, hi = model.interval_bands(contexts, model.forecast_contexts(contexts), scales)[80]
    return float(((hi - lo) / scales[:, None]).mean())


def main() -> None:
    from tqdm import tqdm

    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--nets", default="nbeats,lstm")
    ap.add_argument("--out", default=str(Path(__file__).with_name("forecast_quantiles_results.json")))
    args = ap.parse_args()
    sets, nets = args.sets.split(","), args.nets.split(",")
    out = {"machine": machine(), "windows": WINDOWS, "runs": {}}
    rows = []
    with tempfile.TemporaryDirectory() as tmp, tqdm(total=len(sets) * len(nets) * 2, desc="runs") as bar:
        for name in sets:
            for net in nets:
                auto = run(Path(tmp), name, net, "auto")
                bar.update()
                chose = auto["intervals"]["kind"]
                other = next(k for k in KINDS if k != chose)
                got = {chose: auto, other: run(Path(tmp), name, net, other), "auto": chose}
                bar.update()
                for kind in KINDS:
                    r = got[kind]
                    rows.append([name, net, kind + (" (auto)" if kind == chose else ""), f"{r['mase']:.3f}",
                                 f"{r['wql']:.4f}", f"{r['coverage_80']:.2f}", f"{r['coverage_95']:.2f}",
                                 f"{r['width_80']:.2f}", r["seconds"]])
                out["runs"].setdefault(name, {})[net] = got
    pooled = {}
    pairs = [(s, n) for s in sets for n in nets]
    for kind in (*KINDS, "auto"):
        runs = [out["runs"][s][n][out["runs"][s][n]["auto"] if kind == "auto" else kind] for s, n in pairs]
        points = sum(r["points"] for r in runs)
        pooled[kind] = {"mean_mase": statistics.mean(r["mase"] for r in runs),
                        "mean_wql": statistics.mean(r["wql"] for r in runs),
                        "mean_width_80": statistics.mean(r["width_80"] for r in runs),
                        "coverage_80_pooled": sum(r["coverage_80"] * r["points"] for r in runs) / points,
                        "coverage_95_pooled": sum(r["coverage_95"] * r["points"] for r in runs) / points}
    for kind in KINDS:
        other = next(k for k in KINDS if k != kind)
        pooled[kind]["wql_wins"] = sum(out["runs"][s][n][kind]["wql"] < out["runs"][s][n][other]["wql"] for s, n in pairs)
    pooled["auto"]["chose_the_better"] = sum(
        out["runs"][s][n][out["runs"][s][n]["auto"]]["wql"] <= min(out["runs"][s][n][k]["wql"] for k in KINDS)
        for s, n in pairs)
    out["pooled"] = pooled
    print(table(["set", "net", "intervals", "MASE", "WQL", "cover 80", "cover 95", "width 80", "s"], rows))
    print(table(["intervals", "mean MASE", "mean WQL", "mean width 80", "cover 80 (pooled)", "cover 95 (pooled)"],
                [[k, f"{p['mean_mase']:.4f}", f"{p['mean_wql']:.4f}", f"{p['mean_width_80']:.2f}",
                  f"{p['coverage_80_pooled']:.3f}", f"{p['coverage_95_pooled']:.3f}"] for k, p in pooled.items()]))
    print(f"quantile beats conformal on WQL in {pooled['quantile']['wql_wins']} of {len(pairs)}; auto chose the better "
          f"kind in {pooled['auto']['chose_the_better']} of {len(pairs)}")
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
