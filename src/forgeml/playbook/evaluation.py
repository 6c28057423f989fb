"""Evaluation entries: how much one train/test split's score owes to luck."""
from __future__ import annotations

from pathlib import Path


from forgeml.playbook import Evidence, entry
from forgeml.playbook.common import bars, train

DATA = {"source": "bundled:breast_cancer", "target": "diagnosis"}


@entry(
    "one-split-luck", "evaluation",
    question={"en": "Is one train/test split enough to judge (or compare) a model?",
              "zh": "只做一次训练/测试划分，足以评判（或比较）一个模型吗？"},
    answer={"en": "On a small table, no: the test score moves with the split alone. Use k-fold cross-validation "
                  "(`forgeml cv`) and report the mean and the spread across folds; compare two models on the same "
                  "folds, and call a difference real only when it is larger than that spread.",
            "zh": "在小表格上不够：仅仅换一种划分，测试分数就会变化。用 k 折交叉验证（`forgeml cv`），报告各折的均值和"
                  "波动；在相同的折上比较两个模型，只有差距大于这种波动时才算真的更好。"},
    claim={"en": "On the breast-cancer biopsies (569 rows), the same model's test accuracy moves by at least 1 point "
                 "between train/test splits that differ only in their seed.",
           "zh": "在乳腺癌活检数据（569 行）上，同一个模型仅因划分种子不同，测试准确率的变化至少有 1 个百分点。"},
    caveats={"en": "One model (LightGBM with default settings), 86 test rows per split (one row is 1.2 points); "
                   "2-core CPU.",
             "zh": "只用了一种模型（默认设置的 LightGBM），每次划分的测试集 86 行（一行就是 1.2 个百分点）；"
                   "在 2 核 CPU 上运行。"},
)
def one_split_luck(fast: bool, out: Path) -> Evidence:
    from forgeml import api

    model = {"name": "lightgbm", "n_estimators": 100 if fast else 500}
    seeds = range(3 if fast else 5)
    scores = [train(out, f"split-{s}", {**DATA, "split": {"seed": s}}, model).metrics["test"]["accuracy"] for s in seeds]
    folds = 3 if fast else 5
    cv = api.cross_validate({"name": "cv", "runs_dir": str(out / "runs"), "data": DATA, "model": model,
                             "tracking": {"uri": "none"}}, folds=folds, quiet=True, overwrite=True)
    acc = cv["model"]["accuracy"]
    rows = [[f"split seed {s}", round(v, 4)] for s, v in zip(seeds, scores)]
    rows.append([f"{folds}-fold cv: mean (std across folds)", f"{acc['mean']:.4f} ({acc['std']:.4f})"])
    spread = max(scores) - min(scores)
    plot = bars(out / "one-split-luck.png", [f"seed {s}" for s in seeds], scores, "test accuracy",
                "breast cancer, LightGBM: one split per seed")
    return Evidence(
        ["evaluation", "test accuracy"], rows, spread >= 0.01,
        {"en": f"Across {len(scores)} split seeds the test accuracy ranges from {min(scores):.3f} to {max(scores):.3f} "
               f"({100 * spread:.1f} points); {folds}-fold cross-validation gives {acc['mean']:.3f} with a standard "
               f"deviation of {acc['std']:.3f} across folds.",
         "zh": f"在 {len(scores)} 个划分种子上，测试准确率从 {min(scores):.3f} 到 {max(scores):.3f}（相差 "
               f"{100 * spread:.1f} 个百分点）；{folds} 折交叉验证的均值为 {acc['mean']:.3f}，各折标准差 "
               f"{acc['std']:.3f}。"},
        [plot])


