"""Data and evaluation entries on ISLR Default (10,000 customers, 3.3% of whom default): class imbalance, and why
accuracy misleads."""
from __future__ import annotations

from pathlib import Path

from forgeml.playbook import Evidence, entry
from forgeml.playbook.common import bars, train

DATA = {"source": "bundled:default", "target": "default"}
POSITIVE = "Yes"


def _lightgbm(fast: bool) -> dict:
    return {"name": "lightgbm", "n_estimators": 100 if fast else 500}


@entry(
    "imbalance", "data",
    question={"en": "Only 3% of my rows are positive. How do I handle class imbalance?",
              "zh": "正样本只占 3%，类别不平衡该怎么处理？"},
    answer={"en": "Keep the test split's real balance and judge by the minority class (its F1, precision and recall, "
                  "PR-AUC), not accuracy. The cheapest lever is the decision threshold: tune it on the validation split "
                  "instead of using 0.5, but a threshold tuned on a few dozen positives is itself noisy, so confirm the "
                  "gain on the test split (or across cross-validation folds) before you trust it. Class weights, or "
                  "resampling the training split only (repeating minority rows, SMOTE's interpolations, or synthetic "
                  "rows from a generative model fitted on the training split), are the other lever; they move the "
                  "operating point more than they improve the ranking, so compare them on the same split.",
            "zh": "测试集保持真实比例，用少数类的指标（F1、精确率、召回率、PR-AUC）来评判，而不是准确率。"
                  "最省事的手段是决策阈值：在验证集上调阈值，而不是固定用 0.5；但只凭几十个正例调出的阈值本身也有噪声，"
                  "信任它之前要在测试集上（或在交叉验证的各折上）确认确实有提升。类别权重，或只对训练集重采样（重复少数类样本、"
                  "SMOTE 插值、或用在训练集上拟合的生成模型合成样本）是另一种手段；它们更多是移动工作点，而不是改进排序，"
                  "所以要在同一个划分上比较它们。"},
    claim={"en": "On Default, a decision threshold tuned on validation gives a higher test F1 for the defaulters than "
                 "the default threshold of 0.5.",
           "zh": "在 Default 数据上，在验证集上调好的决策阈值比默认的 0.5 阈值在测试集上得到更高的违约类 F1。"},
    caveats={"en": "One data set, one model family (LightGBM), one split (seed 0); 2-core CPU. Validation and test hold "
                   "1,500 rows each with about 50 defaulters: one customer moves recall by 2 points, and a threshold "
                   "tuned on 50 positives is noisy.",
             "zh": "只用了一个数据集、一种模型（LightGBM）、一个划分（种子 0），在 2 核 CPU 上运行。验证集和测试集各 "
                   "1,500 行，约有 50 个违约客户：一个客户就会让召回率变化 2 个百分点，只凭 50 个正例调出的阈值有噪声。"},
)
def imbalance(fast: bool, out: Path) -> Evidence:
    variants = [("threshold 0.5", {}), ("threshold tuned on validation (F1)", {"threshold": "f1"}),
                ("class weights", {"method": "class_weights"}), ("SMOTE", {"method": "smote"}),
                ("generative oversampling (conditional VAE)", {"method": "generative", "generator_epochs": 10 if fast else 300})]
    rows = []
    for label, balance in variants:
        run = train(out, f"imbalance-{len(rows)}", {**DATA, "balance": balance}, _lightgbm(fast))
        test = run.metrics["test"]
        pos = test["per_class"][POSITIVE]
        rows.append([label, round(pos["f1"], 4), round(pos["precision"], 4), round(pos["recall"], 4),
                     round(test["accuracy"], 4), round(test["pr_auc"], 4)])
    plot = bars(out / "imbalance.png", [r[0].split(" (")[0] for r in rows], [r[1] for r in rows],
                "test F1 of the defaulters", "ISLR Default, LightGBM")
    base, tuned, weighted, smote, generative = (r[1] for r in rows)
    return Evidence(
        ["variant", "F1 (Yes)", "precision (Yes)", "recall (Yes)", "accuracy", "PR-AUC"], rows, tuned > base,
        {"en": f"Defaulters' test F1: {base:.3f} at 0.5, {tuned:.3f} with the tuned threshold, {weighted:.3f} with "
               f"class weights, {smote:.3f} with SMOTE and {generative:.3f} with a generative model's synthetic rows; "
               f"accuracy barely moves with the threshold ({rows[0][4]:.3f} to {rows[1][4]:.3f}).",
         "zh": f"违约类测试 F1：阈值 0.5 时为 {base:.3f}，调阈值后为 {tuned:.3f}，类别权重为 {weighted:.3f}，SMOTE 为 "
               f"{smote:.3f}，生成模型合成样本为 {generative:.3f}；调阈值时准确率几乎不变（{rows[0][4]:.3f} 到 "
               f"{rows[1][4]:.3f}）。"},
        [plot])


@entry(
    "accuracy-misleads", "evaluation",
    question={"en": "My model is 97% accurate. Is it good?",
              "zh": "我的模型准确率 97%，这个模型好吗？"},
    answer={"en": "Not necessarily: when 97% of the rows are negative, predicting \"no\" for everyone is 97% accurate "
                  "and finds nothing. Compare with that constant predictor, and report the positive class's recall, "
                  "precision and PR-AUC (whose chance level is the positive rate, not 0.5).",
            "zh": "不一定：如果 97% 的样本都是负类，对所有人都预测“否”也有 97% 的准确率，却一个正例都找不到。"
                  "要和这个常数预测器比较，并报告正类的召回率、精确率和 PR-AUC（它的随机水平是正例比例，而不是 0.5）。"},
    claim={"en": "On Default, always answering \"No\" is at least 95% accurate on the test split with a recall of 0, "
                 "within 3 points of a trained model's accuracy; the trained model's PR-AUC is far above the "
                 "constant's.",
           "zh": "在 Default 数据上，永远回答“否”在测试集上的准确率至少 95%，召回率为 0，与训练好的模型准确率相差不到 "
                 "3 个百分点；而训练好的模型的 PR-AUC 远高于常数预测器。"},
    caveats={"en": "One data set and split; the constant's PR-AUC is the test split's positive rate.",
             "zh": "只用了一个数据集和一个划分；常数预测器的 PR-AUC 等于测试集的正例比例。"},
)
def accuracy_misleads(fast: bool, out: Path) -> Evidence:
    run = train(out, "accuracy", DATA, _lightgbm(fast))
    test = run.metrics["test"]
    labels = [str(v) for v in run.manifest["target"]["labels"]]
    cm = test["confusion_matrix"]
    p = labels.index(POSITIVE)
    n = sum(map(sum, cm))
    positives = sum(cm[p])
    const_acc = (n - positives) / n
    rows = [["always \"No\"", round(const_acc, 4), 0.0, round(positives / n, 4)],
            ["LightGBM", round(test["accuracy"], 4), round(test["per_class"][POSITIVE]["recall"], 4), round(test["pr_auc"], 4)]]
    supported = const_acc >= 0.95 and test["accuracy"] - const_acc < 0.03 and test["pr_auc"] > 3 * positives / n
    return Evidence(
        ["predictor", "accuracy", "recall (Yes)", "PR-AUC"], rows, supported,
        {"en": f"Always \"No\": accuracy {const_acc:.3f}, recall 0. LightGBM: accuracy {test['accuracy']:.3f}, recall "
               f"{rows[1][2]:.3f}, PR-AUC {test['pr_auc']:.3f} against the constant's {positives / n:.3f}.",
         "zh": f"永远回答“否”：准确率 {const_acc:.3f}，召回率 0。LightGBM：准确率 {test['accuracy']:.3f}，召回率 "
               f"{rows[1][2]:.3f}，PR-AUC {test['pr_auc']:.3f}，而常数预测器只有 {positives / n:.3f}。"})
