"""statsforecast's side of a forecasting benchmark: a rolling-origin backtest (StatsForecast.cross_validation) of
SeasonalNaive, AutoETS, AutoARIMA and AutoTheta on a long CSV, written as JSON. Runs in statsforecast's own virtual
environment (statsforecast 2.1.1 pins pandas<3, forgeml uses pandas 3); it does not import forgeml. Set it up with

    python3.11 -m venv .bench-venvs/statsforecast && .bench-venvs/statsforecast/bin/pip install statsforecast==2.1.1

    .bench-venvs/statsforecast/bin/python benchmarks/peers/statsforecast_series.py --input IN.csv --output OUT.json
        --horizon H --windows W --season S --freq FREQ [--models seasonal_naive,auto_ets,auto_arima,theta]
        [--levels 80,95] [--refit true|false|N]

IN.csv: long format, columns unique_id, ds (dates), y. The backtest covers the last W*H points of each series:
W windows of H steps, the origin moving H steps each time (step_size=H); --refit is cross_validation's refit
(true: refit every window, its default; false: fit once then `forward`; N: refit every N windows).

OUT.json: versions; seconds (wall seconds of fit + predict per model: cross_validation is run once per model);
forecasts, one record per (unique_id, cutoff, ds) with y, each model's point forecast under its name and its
intervals as "<model>-lo-<level>" / "<model>-hi-<level>". NaN is written as null.
"""
import argparse
import json
import math
import platform
import time

import numpy as np
import pandas as pd
import scipy
import statsforecast
from statsforecast import StatsForecast
from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

MODELS = {"seasonal_naive": SeasonalNaive, "auto_ets": AutoETS, "auto_arima": AutoARIMA, "theta": AutoTheta}
KEYS = ["unique_id", "ds", "cutoff"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--horizon", type=int, required=True)
    p.add_argument("--windows", type=int, required=True)
    p.add_argument("--season", type=int, required=True, help="season length; 1 for non-seasonal series")
    p.add_argument("--freq", required=True, help="pandas offset alias of ds, e.g. MS, D, h")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--levels", default="80,95", help="prediction-interval levels in percent; '' for none")
    p.add_argument("--refit", default="true", help="true, false or an integer N (refit every N windows)")
    args = p.parse_args()
    args.models = [m for m in args.models.split(",") if m]
    unknown = set(args.models) - set(MODELS)
    if unknown:
        p.error(f"unknown models {sorted(unknown)}; choose from {list(MODELS)}")
    args.levels = [int(v) for v in args.levels.split(",") if v]
    refit = args.refit.lower()
    args.refit = True if refit == "true" else False if refit == "false" else int(refit)
    return args


def read_series(path: str) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"unique_id": str})
    df["ds"] = pd.to_datetime(df["ds"])
    df["y"] = df["y"].astype(float)
    return df[["unique_id", "ds", "y"]].sort_values(["unique_id", "ds"], ignore_index=True)


def backtest(df: pd.DataFrame, name: str, args: argparse.Namespace) -> tuple[pd.DataFrame, float]:
    """cross_validation of one model (named by its alias); returns its forecasts and the wall seconds."""
    sf = StatsForecast(models=[MODELS[name](season_length=args.season, alias=name)], freq=args.freq, n_jobs=1)
    tic = time.perf_counter()
    cv = sf.cross_validation(df=df, h=args.horizon, n_windows=args.windows, step_size=args.horizon,
                             refit=args.refit, level=args.levels or None)
    return cv, time.perf_counter() - tic


def records(cv: pd.DataFrame) -> list[dict]:
    out = []
    for row in cv.to_dict(orient="records"):
        rec = {"unique_id": str(row.pop("unique_id")), "ds": row.pop("ds").isoformat(),
               "cutoff": row.pop("cutoff").isoformat()}
        rec.update({k: None if v is None or math.isnan(v) else float(v) for k, v in row.items()})
        out.append(rec)
    return out


def main() -> None:
    args = parse_args()
    df = read_series(args.input)
    merged, seconds = None, {}
    for name in args.models:
        cv, seconds[name] = backtest(df, name, args)
        merged = cv if merged is None else merged.merge(cv.drop(columns="y"), on=KEYS, how="outer", validate="1:1")
    versions = {"statsforecast": statsforecast.__version__, "pandas": pd.__version__, "numpy": np.__version__,
                "scipy": scipy.__version__, "python": platform.python_version()}
    result = {"versions": versions, "seconds": seconds, "forecasts": records(merged.sort_values(KEYS))}
    with open(args.output, "w") as f:
        json.dump(result, f, allow_nan=False)


if __name__ == "__main__":
    main()
