"""Forecasting (task: forecasting): series read as users' files hold them (an R ts export with its rownames column and
decimal years, tsibble's "1939 Jan" in a semicolon CSV, a long table of many series with covariates), the rolling-origin
backtest, the statistical baselines beside every model, intervals, predict with future covariates, and the bad
input that must stop with one clear message."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from forgeml import api
from forgeml.errors import DataError
from forgeml.features.series import default_horizon, parse_times, read_panel, season_for

from conftest import cli, promo_panel, user_error

TRACK = ("--tracking-uri", "none", "-q")


@pytest.fixture(scope="module")
def air(air_csv, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return api.train({"name": "air", "runs_dir": str(runs), "data": {"source": str(air_csv)},
                      "task": {"name": "forecasting", "horizon": 12, "leaderboard": True},
                      "train": {"epochs": 6}, "tracking": {"uri": "none"}}, quiet=True)


# ------------------------------------------------------------------------------------------------ reading series
def test_times_as_users_files_hold_them():
    stamps, freq = parse_times(pd.Series([1949.0, 1949.083333, 1949.166667], name="time"))
    assert freq == "MS" and list(stamps.dt.month) == [1, 2, 3]
    stamps, freq = parse_times(pd.Series([1960.0, 1960.25, 1960.5], name="time"))
    assert freq == "QS" and list(stamps.dt.month) == [1, 4, 7]
    stamps, freq = parse_times(pd.Series(["1939 Jan", "1939 Feb"], name="Month"))
    assert freq == "MS" and stamps.iloc[1] == pd.Timestamp("1939-02-01")
    stamps, freq = parse_times(pd.Series(["2014 Q1", "2014 Q2"], name="Quarter"))
    assert freq == "QS" and stamps.iloc[1] == pd.Timestamp("2014-04-01")
    with pytest.raises(DataError, match=r"'when'.*'not a date'.*row 2"):
        parse_times(pd.Series(["2020-01-01", "not a date"], name="when"))


def test_times_with_time_zones_are_read_in_utc_and_a_mix_is_refused():
    stamps, _ = parse_times(pd.Series(["2024-03-01T10:00:00+01:00", "2024-03-01T10:00:00Z", "2024-03-01T12:00:00+02:00"]))
    assert list(stamps) == [pd.Timestamp("2024-03-01 09:00"), pd.Timestamp("2024-03-01 10:00"), pd.Timestamp("2024-03-01 10:00")]
    with pytest.raises(DataError, match="mixes times with a time zone .'2024-01-02T00:00:00Z'. and without one .'2024-01-01'."):
        parse_times(pd.Series(["2024-01-01", "2024-01-02T00:00:00Z"], name="t"))


def test_frequency_season_gaps_and_a_late_start():
    df = pd.DataFrame({"id": ["a"] * 6 + ["b"] * 6,
                       "t": list(pd.date_range("2020-01-01", periods=6, freq="h")) * 2,
                       "y": [1, 2, np.nan, 4, 5, 6, np.nan, np.nan, 3, 4, 5, 6]})
    notes = []
    panel, time_col = read_panel(df, "y", None, "id", [], None, None, "fill", notes.append)
    assert time_col == "t" and panel.freq == "h" and panel.season == 24
    assert season_for("30min") == 48 and default_horizon("30min") == 48 and season_for("2h") == 12  # a day of steps
    assert season_for("MS") == 12 and season_for("QS-JAN") == 4 and season_for("W-SUN") == 52
    a, b = panel.series
    assert a.values[2] == 3.0 and a.filled == 1 and "interpolation" in notes[0]  # the hole inside a is filled
    assert len(b.values) == 4 and b.times[0] == pd.Timestamp("2020-01-01 02:00")  # b starts late: cut, not filled
    with pytest.raises(DataError, match=r"series 'a' has 1 missing .* 2020-01-01 02:00"):
        read_panel(df, "y", "t", "id", [], None, None, "refuse")
    gap = df.drop(index=3)  # a missing time, not only a missing value
    panel, _ = read_panel(gap, "y", "t", "id", [], None, None, "fill")
    assert len(panel.series[0].values) == 6
    # every series has missing times: the most common step says the frequency (times parsed from text by pandas 3
    # are in microseconds; the step was once read as nanoseconds, a daily series as "86400ms")
    days = pd.DataFrame({"t": ["2024-01-01", "2024-01-02", "2024-01-04", "2024-01-05", "2024-01-07", "2024-01-08"],
                         "y": [1.0, 2, 3, 4, 5, 6]})
    panel, _ = read_panel(days, "y", "t", None, [], None, None, "fill")
    assert panel.freq == "D" and panel.season == 7 and len(panel.series[0].values) == 8


def test_duplicated_times_and_columns_are_named():
    df = pd.DataFrame({"store": ["x", "x", "y"], "day": ["2020-01-01", "2020-01-01", "2020-01-01"], "v": [1, 2, 3]})
    with pytest.raises(DataError, match=r"series 'x' has the time 2020-01-01 00:00:00 more than once"):
        read_panel(df, "v", "day", "store", [], None, None, "fill")
    with pytest.raises(DataError, match="known covariate"):
        read_panel(df, "v", "day", "store", ["price"], None, None, "fill")


def test_covariates_are_known_static_or_past():
    df = promo_panel(2, 30).assign(temp=lambda d: np.arange(len(d)) % 7)
    panel, _ = read_panel(df, "sales", "date", "store", ["promo"], None, None, "fill")
    assert panel.known == ["promo"] and panel.static == ["region"] and panel.past == ["temp"]
    assert panel.freq == "D" and panel.season == 7 and panel.series[1].static == {"region": "north"}


# ------------------------------------------------------------------------------------------------ a whole run
def test_backtest_choice_baselines_and_intervals_on_air_passengers(air):
    m, manifest = air.metrics, air.manifest
    assert manifest["task"] == "forecasting" and manifest["target"]["freq"] == "MS" and manifest["target"]["season"] == 12
    assert m["test"]["n"] == 24 and manifest["data"]["rows"] == {"train": 96, "val": 24, "test": 24}
    board = {row[0]: row for row in m["test"]["tables"]["leaderboard (MASE)"]["rows"]}
    assert {"seasonal_naive", "ets", "theta", "arima", "lightgbm_forecast", "nbeats"} <= set(board)
    kept = m["model"]
    assert board[kept][1] == min(row[1] for row in board.values())  # kept: the lowest validation MASE
    assert m["baseline"]["name"] in {"seasonal_naive", "ets", "theta", "arima"}
    naive = m["references"]["seasonal naive"]["test"]["mase"]
    assert m["test"]["mase"] < 0.9 * naive  # measured: 1.07 vs 1.67 with arima kept
    assert all(row[2] is not None for name, row in board.items() if name != "combination")  # leaderboard: all scored
    assert 0 <= m["test"]["coverage_80"] <= m["test"]["coverage_95"] <= 1 and m["test"]["wql"] > 0
    assert len(m["test"]["by_step"]) == 12
    rows = m["test"]["tables"]["per-series errors"]["rows"]
    assert len(rows) == 1 and rows[0][1] == pytest.approx(m["test"]["mase"], rel=1e-3)
    report = (air.run_dir / "report.html").read_text()
    assert "Leaderboard (mase) (test)" in report and "forecasts.png" not in report  # plots are embedded, not linked
    assert (air.run_dir / "plots" / "forecasts.png").is_file() and (air.run_dir / "plots" / "error_by_step.png").is_file()


def test_predict_and_evaluate_from_the_saved_models(air, air_csv, tmp_path):
    model = api.load(air.run_dir)
    out = model.predict(str(air_csv))
    assert len(out) == 12 and list(out.columns) == ["series", "time", "forecast", "lo_80", "hi_80", "lo_95", "hi_95"]
    assert out["time"].iloc[0] == pd.Timestamp("1961-01-01") and out["time"].iloc[-1] == pd.Timestamp("1961-12-01")
    assert (out["lo_95"] <= out["lo_80"]).all() and (out["lo_80"] < out["forecast"]).all() and (out["forecast"] < out["hi_80"]).all()
    assert ((out["hi_80"] - out["lo_80"]).diff().dropna() >= -1e-9).all()  # intervals widen with the step
    assert 350 < out["forecast"].mean() < 650  # 1960 averaged 476 passengers a month
    # evaluate without data: the saved models on the run's own test windows, which they never saw
    again = api.evaluate(air.run_dir)
    assert again["mase"] == pytest.approx(air.metrics["test"]["mase"], rel=1e-6)
    # the CLI, with the history as --data
    assert cli("predict", str(air.run_dir), "--data", str(air_csv), "-o", str(tmp_path / "next.csv")) == 0
    assert len(pd.read_csv(tmp_path / "next.csv")) == 12


def test_many_series_with_a_known_covariate_and_predict_needs_its_future(tmp_path, capsys):
    df = promo_panel()
    df.to_csv(tmp_path / "sales.csv", sep=";", index=False)
    assert cli("train", "--task", "forecasting", "--data", str(tmp_path / "sales.csv"), "--id-col", "store",
               "--time-col", "date", "--target", "sales", "--horizon", "7", "--model", "lightgbm_forecast",
               "--set", "task.known=[promo]", "--set", "task.windows=1", "--set", "model.n_estimators=100",
               "--name", "sales",
               "--runs-dir", str(tmp_path / "runs"), *TRACK) == 0
    capsys.readouterr()
    m = json.loads((tmp_path / "runs" / "sales" / "metrics.json").read_text())
    assert m["model"] == "lightgbm_forecast" and m["test"]["n_series"] == 3
    # the promotion is known ahead: the global model uses it and beats every statistical baseline, which cannot
    assert m["test"]["mase"] < 0.6 * m["baseline"]["test"]["mase"]
    history = df.copy()
    with pytest.raises(DataError, match=r"series 's0': the known covariates \['promo'\] are missing at 7"):
        api.predict(tmp_path / "runs" / "sales", history)
    last = pd.Timestamp(df["date"].max())
    future = pd.DataFrame([{"store": s, "date": (last + pd.Timedelta(days=d)).strftime("%Y-%m-%d"), "sales": None,
                            "promo": int(d % 2 == 0), "region": "north" if s == "s1" else "south"}
                           for s in ("s0", "s1", "s2") for d in range(1, 8)])
    out = api.predict(tmp_path / "runs" / "sales", pd.concat([history, future], ignore_index=True))
    assert len(out) == 21 and set(out["store"]) == {"s0", "s1", "s2"}
    s0 = out[out["store"] == "s0"].reset_index(drop=True)
    promo = future[future["store"] == "s0"]["promo"].to_numpy()
    assert s0["forecast"][promo == 1].mean() > 1.2 * s0["forecast"][promo == 0].mean()  # the plan moves the forecast


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_input_is_one_clear_message(tmp_path, capsys, air_csv):
    runs = ("--runs-dir", str(tmp_path / "runs"), *TRACK)
    msg = user_error(capsys, "train", "--task", "forecasting", "--data", str(air_csv), "--horizon", "0", *runs)
    assert "horizon" in msg
    msg = user_error(capsys, "train", "--task", "forecasting", "--data", str(air_csv), "--horizon", "40", *runs)
    assert "the series has fewer than 240 points (the longest: 144)" in msg and "--horizon" in msg
    dup = pd.DataFrame({"t": ["2020-01-01", "2020-01-02", "2020-01-02"], "y": [1, 2, 3]})
    dup.to_csv(tmp_path / "dup.csv", index=False)
    msg = user_error(capsys, "train", "--task", "forecasting", "--data", str(tmp_path / "dup.csv"), *runs)
    assert "2020-01-02" in msg and "more than once" in msg
    bad = pd.DataFrame({"t": ["2020-01-01", "someday"], "y": [1, 2]})
    bad.to_csv(tmp_path / "bad.csv", index=False)
    msg = user_error(capsys, "train", "--task", "forecasting", "--data", str(tmp_path / "bad.csv"), *runs)
    assert "'someday'" in msg
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing half-written


def test_a_history_too_short_to_forecast_from(air, air_csv):
    df = pd.read_csv(air_csv).tail(5)
    with pytest.raises(DataError, match="5 points of history; this model needs at least 13"):
        api.predict(air.run_dir, df)


def test_capabilities_not_built_for_series_say_so(air, air_csv, tmp_path, capsys):
    assert "window network" in user_error(capsys, "export", str(air.run_dir))  # the kept model is statistical
    msg = user_error(capsys, "cv", "--task", "forecasting", "--data", str(air_csv), "--runs-dir", str(tmp_path), *TRACK)
    assert "rolling-origin backtests" in msg and "task.windows" in msg
    msg = user_error(capsys, "federate", "--task", "forecasting", "--data", str(air_csv), "--runs-dir", str(tmp_path), *TRACK)
    assert "not on forecasting" in msg
