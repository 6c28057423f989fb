"""Time-series forecasting, deep or classic: forgeml's forecasting family on related monthly series (US employment
by sector) and on one short series (AirPassengers), every model scored on the same held-out test windows."""
from __future__ import annotations

from pathlib import Path

from forgeml.playbook import Evidence, entry
from forgeml.playbook.common import bars, train

DEEP = ("nbeats", "lstm")


def _many_series(out: Path, n: int) -> str:
    """The first ``n`` series of fpp3 us_employment as a CSV in ``out`` (a long table, as a user would have it)."""
    from forgeml.data.bundled import load_bundled

    df, _ = load_bundled("us_employment")
    keep = df["Series_ID"].drop_duplicates().iloc[:n]
    path = Path(out) / f"us_employment_{n}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    df[df["Series_ID"].isin(keep)].to_csv(path, index=False)
    return str(path)


def _board(run) -> dict[str, float]:
    """Each candidate's test MASE (the run scores every one with task.leaderboard)."""
    rows = run.metrics["test"]["tables"]["leaderboard (MASE)"]["rows"]
    out = {row[0]: row[2] for row in rows if row[2] is not None}
    out[f"kept: {run.metrics['model']}"] = round(run.metrics["test"]["mase"], 4)
    return out


@entry(
    "forecast-deep-or-classic", "applications",
    question={"en": "Should I forecast my time series with a deep model (an RNN/LSTM) or a classic one like ETS?",
              "zh": "预测时间序列，该用深度模型（RNN/LSTM）还是 ETS 这样的经典模型？"},
    answer={"en": "Try both on a rolling-origin backtest and keep what wins on validation windows; never judge on "
                  "the training fit. Classic models (seasonal naive, ETS, Theta, ARIMA) fit each series alone and "
                  "are hard to beat on one short series. Deep models pay off when they are global: one network "
                  "trained on the windows of many related series learns shapes that no single series shows often "
                  "enough. A forecast combination (the mean of the best few) is a safe default. forgeml's "
                  "forecasting task trains all of them, keeps the best on validation and puts the best classic "
                  "baseline beside it: `forgeml train --task forecasting --data FILE --id-col ID --horizon H`.",
            "zh": "在滚动起点回测上两类都试，保留验证窗口上更好的那个；不要用训练拟合来判断。经典模型（季节性朴素、ETS、"
                  "Theta、ARIMA）对每条序列单独拟合，在一条短序列上很难被超越。深度模型在“全局”训练时才划算：一个网络在许多"
                  "相关序列的窗口上训练，能学到单条序列里不常出现的形态。预测组合（最好几个模型的平均）是稳妥的默认选择。"
                  "forgeml 的 forecasting 任务会训练所有这些模型，保留验证集上最好的，并把最好的经典基线放在旁边："
                  "`forgeml train --task forecasting --data FILE --id-col ID --horizon H`。"},
    claim={"en": "On related monthly series (US employment by sector), a global deep model (N-BEATS or an LSTM) has a "
                 "lower test MASE than ETS fitted to each series, and every model beats seasonal naive there.",
           "zh": "在相关的月度序列（美国分行业就业）上，全局深度模型（N-BEATS 或 LSTM）的测试 MASE 低于对每条序列单独拟合"
                 "的 ETS，并且所有模型都优于季节性朴素预测。"},
    caveats={"en": "Two data sets, one seed, two test windows of 12 months per series; the networks train for few "
                   "epochs on a 2-core CPU (3 in --fast, 30 otherwise). US employment is smooth and strongly "
                   "related across sectors, which favours global models; on noisy or unrelated series the classics "
                   "may win. MASE below 1 beats the in-sample error of seasonal naive.",
             "zh": "两个数据集、一个种子，每条序列两个 12 个月的测试窗口；网络在 2 核 CPU 上只训练少量 epoch（--fast 为 3，"
                   "否则 30）。美国就业数据平滑且各行业高度相关，有利于全局模型；在噪声大或互不相关的序列上经典模型可能更好。"
                   "MASE 小于 1 表示优于季节性朴素预测的样本内误差。"},
    needs=("statsmodels", "forecast"),
)
def forecast_deep_or_classic(fast: bool, out: Path) -> Evidence:
    epochs = {"epochs": 3 if fast else 30}
    task = {"name": "forecasting", "horizon": 12, "leaderboard": True}
    n = 8 if fast else 30
    many = train(out, "forecast-many", {"source": _many_series(out, n), "split": {"time_col": "Month"}},
                 {"name": "auto"}, task={**task, "id_col": "Series_ID"}, train=epochs)
    one = train(out, "forecast-one", {"source": "bundled:air_passengers"}, {"name": "auto"}, task=task, train=epochs)
    boards = {f"us_employment ({n} series)": _board(many), "AirPassengers (1 series)": _board(one)}
    rows = [[data, model, mase] for data, board in boards.items() for model, mase in board.items()]
    b = boards[f"us_employment ({n} series)"]
    deep = min(b[m] for m in DEEP)
    others = dict(b)
    naive = others.pop("seasonal_naive")
    supported = bool(deep < b["ets"] and all(v < naive for v in others.values()))
    names = [m for m in ("seasonal_naive", "ets", "theta", "lightgbm_forecast", *DEEP) if m in b]
    plot = bars(out / "forecast-deep-or-classic.png", names, [b[m] for m in names], "test MASE",
                f"us_employment, {n} series: test MASE by model (lower is better)")
    a = boards["AirPassengers (1 series)"]
    return Evidence(
        ["data", "model", "test MASE"], rows, supported,
        {"en": f"On {n} US employment series: best deep model {deep:.3f} vs ETS {b['ets']:.3f} and seasonal naive "
               f"{b['seasonal_naive']:.3f}; the run kept {many.metrics['model']} ({many.metrics['test']['mase']:.3f}). "
               f"On AirPassengers alone: N-BEATS {a['nbeats']:.3f}, LSTM {a['lstm']:.3f}, ETS {a['ets']:.3f}, "
               f"seasonal naive {a['seasonal_naive']:.3f}; kept {one.metrics['model']} ({one.metrics['test']['mase']:.3f}).",
         "zh": f"在 {n} 条美国就业序列上：最好的深度模型 {deep:.3f}，ETS {b['ets']:.3f}，季节性朴素 {b['seasonal_naive']:.3f}；"
               f"运行保留了 {many.metrics['model']}（{many.metrics['test']['mase']:.3f}）。只看 AirPassengers："
               f"N-BEATS {a['nbeats']:.3f}，LSTM {a['lstm']:.3f}，ETS {a['ets']:.3f}，季节性朴素 {a['seasonal_naive']:.3f}；"
               f"保留了 {one.metrics['model']}（{one.metrics['test']['mase']:.3f}）。"},
        [plot])
