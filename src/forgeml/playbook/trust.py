"""Trust entries: explaining a table model (permutation importance and LIME, checked by retraining without each
column), and what privacy costs (DP-SGD's accuracy against epsilon, federated against centralized training)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from forgeml.playbook import Evidence, entry
from forgeml.playbook.common import train

DEFAULT = {"source": "bundled:default", "target": "default"}  # ISLR Default: 10,000 customers, 3.3% default


def _importance_plot(path: Path, names: list[str], perm: list[float], sd: list[float], cost: list[float]) -> str:
    from forgeml.evaluate.plots import pyplot, save_figure

    plt = pyplot()

    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 2.8), sharey=True)
    y = np.arange(len(names))[::-1]
    left.barh(y, perm, xerr=sd, color="#2b6cb0")
    right.barh(y, cost, color="#c05621")
    for ax, values, err in ((left, perm, sd), (right, cost, [0.0] * len(cost))):
        ax.axvline(0, color="#888888", linewidth=1)
        for yi, v, e in zip(y, values, err):
            ax.text(max(v, 0) + e, yi, f" {v:+.4f}", va="center", fontsize=8)
        ax.set_xlim(min(0.0, min(values)) - 0.02, max(values) * 1.45)
    left.set_yticks(y, names)
    left.set_xlabel("permutation importance (test ROC-AUC drop)")
    right.set_xlabel("retrained without the column (test ROC-AUC lost)")
    fig.suptitle("ISLR Default, LightGBM: what the model uses, and what it loses without it", fontsize=10)
    save_figure(fig, Path(path))
    return Path(path).name


@entry(
    "explain-model", "trust",
    question={"en": "How do I explain what my model relies on, overall and for one prediction?",
              "zh": "怎样解释模型依赖的是什么，既看整体，也看单条预测？"},
    answer={"en": "Two questions, two tools. Overall: permutation importance on held-out rows (`forgeml explain RUN`): "
                  "shuffle one column and measure how much the test metric drops. It is model-agnostic and measured "
                  "in the metric you care about. For one prediction: a per-row attribution, LIME (any model, LightGBM "
                  "included) or Integrated Gradients (the MLP), which splits the row's predicted probability among "
                  "its columns, against a typical row. Both describe the model, not the world: check a surprising "
                  "ranking by retraining without the column (drop-column importance), and remember that correlated "
                  "columns share credit, so a low importance means \"not needed given the others\", not \"useless\".",
            "zh": "这是两个问题，用两种工具。整体：在留出的数据上算置换重要性（`forgeml explain RUN`）：打乱某一列，看测试"
                  "指标下降多少。它与模型无关，而且用的就是你关心的指标。单条预测：用逐行归因，LIME（任何模型都可用，包括 "
                  "LightGBM）或积分梯度（MLP），把这一行的预测概率相对于一个“典型行”分摊到各列上。两者描述的都是模型，"
                  "而不是现实世界：排名出乎意料时，去掉该列重新训练来核对（删列重要性）；还要记住相关的列会分摊功劳，"
                  "重要性低的意思是“有了其他列就不需要它”，而不是“它没有用”。"},
    claim={"en": "On ISLR Default, LightGBM's permutation importance ranks balance first; retrained without its "
                 "top-ranked column the model loses more test ROC-AUC than without its lowest-ranked one; and LIME "
                 "gives the top-ranked column the largest attribution in at least 80% of the rows it explains.",
           "zh": "在 ISLR Default 数据上，LightGBM 的置换重要性把 balance 排在第一；去掉排名第一的列重新训练，测试 ROC-AUC "
                 "的损失大于去掉排名最后的列；并且在 LIME 解释的行中，至少 80% 的行里排名第一的列得到最大的归因。"},
    caveats={"en": "One data set with three columns, one of which (balance) carries nearly all the signal, so the ranking "
                   "is easy; one model (LightGBM, early stopping on validation), one split (seed 0); permutation "
                   "importance with 5 shuffles per column on the 1,500 test rows. Drop-column costs of the weak columns "
                   "are within the noise of one retrain (a negative cost means the model did slightly better without "
                   "the column). LIME explains the probability of the predicted class from 400 random perturbations per "
                   "row (seed 0), on rows forgeml spreads over both classes (so defaulters are over-represented). "
                   "Image attributions (Grad-CAM on digits) are not measured here: see docs/explain.md. 2-core CPU.",
             "zh": "只用了一个数据集，只有三列，其中 balance 几乎承载了全部信号，所以排名并不难；只有一种模型（LightGBM，"
                   "在验证集上早停）和一个划分（种子 0）；置换重要性在 1,500 个测试行上每列打乱 5 次。弱列的删列损失在一次"
                   "重新训练的噪声范围之内（损失为负表示去掉该列后模型略好）。LIME 解释的是预测类别的概率，每行 400 个随机"
                   "扰动（种子 0），解释的行由 forgeml 在两个类别之间分配（所以违约客户占比偏高）。图像归因（digits 上的 "
                   "Grad-CAM）这里没有测，见 docs/explain.md。在 2 核 CPU 上运行。"},
)
def explain_model(fast: bool, out: Path) -> Evidence:
    from forgeml import api

    model = {"name": "lightgbm", "n_estimators": 100 if fast else 500}
    one = {"threads": 1}
    full = train(out, "explain-all", DEFAULT, model, train=one)
    result = api.explain(full.run_dir, quiet=True, rows=10 if fast else 20, out=out / "explanations")
    perm = result["permutation"]["features"]  # by rank
    rows_explained = result["instances"]
    auc = full.metrics["test"]["roc_auc"]
    rows = [["all three columns", "-", "-", "-", round(auc, 4), 0.0, "-", "-"]]
    for f in perm:
        name = f["feature"]
        without = train(out, f"explain-without-{name}", {**DEFAULT, "features": {name: "ignore"}}, model, train=one)
        w_auc = without.metrics["test"]["roc_auc"]
        lime = [abs(r["attributions"][name]) for r in rows_explained]
        top_share = sum(r["top"][0] == name for r in rows_explained) / len(rows_explained)
        rows.append([name, f["rank"], round(f["importance"], 4), round(f["std"], 4), round(w_auc, 4),
                     round(auc - w_auc, 4), round(float(np.mean(lime)), 4), round(top_share, 4)])
    top, bottom = rows[1], rows[-1]
    plot = _importance_plot(out / "explain-model.png", [r[0] for r in rows[1:]], [r[2] for r in rows[1:]],
                            [r[3] for r in rows[1:]], [r[5] for r in rows[1:]])
    supported = bool(top[0] == "balance" and top[5] > bottom[5] and top[7] >= 0.8)
    n = len(rows_explained)
    order = ", ".join(f"{r[0]} {r[2]:+.4f}" for r in rows[1:])
    costs = ", ".join(f"{r[0]} {r[5]:+.4f}" for r in rows[1:])
    return Evidence(
        ["column", "permutation rank", "permutation importance (ROC-AUC drop)", "± sd", "test ROC-AUC retrained without it",
         "ROC-AUC lost without it", "LIME mean |attribution|", "share of LIME rows where it is the top column"],
        rows, supported,
        {"en": f"LightGBM's test ROC-AUC is {auc:.4f}. Permutation importance (ROC-AUC drop): {order}. Retrained "
               f"without each column, the model loses {costs} of ROC-AUC: without {top[0]} it falls to {top[4]:.4f}, "
               f"without {bottom[0]} it ends at {bottom[4]:.4f}. LIME, on {n} test rows, gives {top[0]} the largest "
               f"attribution in {round(top[7] * n)} of them (mean |attribution| {top[6]:.4f} against "
               f"{max(r[6] for r in rows[2:]):.4f} at most for the others).",
         "zh": f"LightGBM 的测试 ROC-AUC 为 {auc:.4f}。置换重要性（ROC-AUC 下降）：{order}。逐列去掉后重新训练，模型损失的 "
               f"ROC-AUC 为：{costs}；去掉 {top[0]} 时降到 {top[4]:.4f}，去掉 {bottom[0]} 时为 {bottom[4]:.4f}。LIME 解释了 "
               f"{n} 个测试行，其中 {round(top[7] * n)} 行里 {top[0]} 的归因最大（平均绝对归因 {top[6]:.4f}，其他列最多 "
               f"{max(r[6] for r in rows[2:]):.4f}）。"},
        [plot])


# ---- privacy: DP-SGD's accuracy against epsilon, and federated against centralized training, on digits ----

DIGITS = {"source": "bundled:digits", "split": {"val": 0.1, "test": 0.2, "seed": 0}}  # 360 test images
DP_LOOP = {"batch_size": 256, "epochs": 30, "optimizer": "sgd", "momentum": 0.9, "lr": 0.2, "weight_decay": 0.0,
           "schedule": "constant", "early_stopping": None}  # forgeml's DP defaults, for the no-DP runs
FED_LOOP = {"batch_size": 64, "optimizer": "sgd", "momentum": 0.9, "lr": 0.2, "weight_decay": 0.0, "schedule": "constant"}
CLIENTS = 5


def _accuracy_plot(path: Path, labels: list[str], mean: list[float], low: list[float], high: list[float]) -> str:
    from forgeml.evaluate.plots import pyplot, save_figure

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 3.4))
    x = np.arange(len(labels))
    err = [np.subtract(mean, low), np.subtract(high, mean)]
    colors = ["#888888" if "no DP" in s or "central" in s else "#2b6cb0" if "ε" in s else "#2f855a" for s in labels]
    ax.bar(x, mean, yerr=err, color=colors, capsize=3)
    for i, v in enumerate(mean):
        ax.text(i, high[i], f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(max(0.0, min(low) - 0.1), 1.0)
    ax.set_ylabel("test accuracy (360 digits)")
    ax.set_title("digits, linear model: DP-SGD by epsilon (range over seeds), federated vs centralized", fontsize=9)
    save_figure(fig, Path(path))
    return Path(path).name


@entry(
    "privacy-cost", "trust",
    question={"en": "What does privacy cost in accuracy: differential privacy, and federated learning?",
              "zh": "隐私要付出多少准确率：差分隐私和联邦学习各要多少？"},
    answer={"en": "Differential privacy (DP-SGD: `train.privacy: {epsilon: E}` or `--epsilon`) clips every row's gradient "
                  "and adds noise, and the cost grows as epsilon shrinks: at a weak budget (8) a small model loses a few "
                  "points, at a strong one (1) clearly more. Keep the model small (forgeml trains a linear model under "
                  "DP by default), the batches large and the rows many: the noise is the same size whatever the data, "
                  "the signal grows with them. Measure it on your data: train with and without DP on the same split. "
                  "Federated learning (`forgeml federate`) keeps the rows where they are and averages the clients' "
                  "weights; with well-mixed clients it ends close to training on the pooled rows, and it is not by "
                  "itself a privacy guarantee (the server sees the weights): add `--epsilon` for that.",
            "zh": "差分隐私（DP-SGD：`train.privacy: {epsilon: E}` 或 `--epsilon`）会裁剪每一行的梯度并加入噪声，epsilon "
                  "越小代价越大：预算较宽松（8）时，小模型只损失几个百分点；预算很严（1）时损失明显更多。模型要小（forgeml "
                  "在 DP 下默认训练线性模型）、批量要大、数据行要多：噪声的大小与数据无关，而信号随数据增长。要在自己的数据"
                  "上测：在同一个划分上分别训练有 DP 和无 DP 的模型。联邦学习（`forgeml federate`）让数据留在原处，只平均各"
                  "客户端的权重；客户端数据分布相近时，结果接近把数据集中起来训练。它本身并不是隐私保证（服务器能看到权重），"
                  "需要保证时再加 `--epsilon`。"},
    claim={"en": "On the digits (1,797 8x8 images, 360 test rows), forgeml's DP default (a linear model) at epsilon 8 "
                 "loses less than 3 points of test accuracy against the same model and loop without DP, and federated "
                 "training over 5 clients ends within 2 points of the same model trained on the pooled rows.",
           "zh": "在 digits 数据（1,797 张 8x8 图像，360 个测试行）上，forgeml 的 DP 默认模型（线性模型）在 epsilon 8 时，"
                 "测试准确率比相同模型、相同训练设置但不加 DP 时低不到 3 个百分点；5 个客户端的联邦训练与把数据集中起来"
                 "训练的同一模型相差不超过 2 个百分点。"},
    caveats={"en": "One small, easy data set and one model; one split (quickstart's: val 0.1, test 0.2, seed 0), each DP "
                   "setting over training seeds (initialization, Poisson sampling, noise). DP runs use forgeml's DP "
                   "defaults (batch 256, 30 epochs, SGD with momentum at lr 0.2, clipping at 1.0, delta 1e-5) with the "
                   "RDP accountant, quicker than the default PRV and slightly looser (about 6-8% more noise for the same "
                   "budget); the no-DP runs use the same loop. Only the training rows are protected: pixel scaling uses "
                   "their known range, validation and test are used without noise. Federated: clients simulated on one "
                   "machine (Flower, FedAvg), one seed, no DP, batch 64 and the same optimizer, against the centralized "
                   "twin forgeml trains with the same passes over the data; the IID clients hold the same class mix, "
                   "the Dirichlet (alpha 0.5) ones skewed mixes. One test row is 0.28 points. 2-core CPU.",
             "zh": "只有一个又小又简单的数据集和一种模型；一个划分（与 quickstart 相同：验证 0.1、测试 0.2、种子 0），每个 DP "
                   "设置跑多个训练种子（初始化、泊松采样、噪声）。DP 运行使用 forgeml 的 DP 默认设置（批量 256、30 轮、带动量"
                   "的 SGD、学习率 0.2、裁剪范数 1.0、delta 1e-5），会计方法用 RDP：比默认的 PRV 快，但略宽松（相同预算下噪声"
                   "多约 6-8%）；无 DP 的运行使用同样的训练设置。只有训练行受保护：像素按已知范围缩放，验证集和测试集不加噪声"
                   "地使用。联邦学习：客户端在一台机器上模拟（Flower，FedAvg），一个种子，不加 DP，批量 64、优化器相同，与 "
                   "forgeml 以相同数据遍数训练的集中式“孪生”模型比较；IID 客户端的类别比例相同，Dirichlet（alpha 0.5）客户端"
                   "的类别比例偏斜。一个测试行是 0.28 个百分点。在 2 核 CPU 上运行。"},
)
def privacy_cost(fast: bool, out: Path) -> Evidence:
    from threadpoolctl import threadpool_limits

    from forgeml import api

    seeds = range(1 if fast else 3)
    epsilons = [8.0] if fast else [8.0, 3.0, 1.0]  # --fast: the claim's budget only
    model = {"name": "linear"}
    rows, labels, budgets = [], [], []
    with threadpool_limits(1):  # one BLAS thread: the baseline's fit is many times quicker on a shared 2-core CPU
        for eps in [None, *epsilons]:
            tag = "nodp" if eps is None else f"eps{eps:g}"
            extra = DP_LOOP if eps is None else {"privacy": {"epsilon": eps, "delta": 1e-5, "accountant": "rdp"}}
            runs = [train(out, f"privacy-{tag}-seed{s}", DIGITS, model, train={"threads": 1, "seed": s, **extra})
                    for s in seeds]
            acc = [r.metrics["test"]["accuracy"] for r in runs]
            spent = [r.metrics["privacy"] for r in runs if r.metrics.get("privacy")]
            budgets += spent
            label = "no DP (same model and loop)" if eps is None else f"DP-SGD, epsilon {eps:g}"
            ref = rows[0][2] if rows else float(np.mean(acc))
            rows.append([label, len(runs), round(float(np.mean(acc)), 4), round(min(acc), 4), round(max(acc), 4),
                         round(float(np.mean(acc)) - ref, 4),
                         round(max(p["epsilon"] for p in spent), 4) if spent else "-",
                         round(float(np.mean([p["noise_multiplier"] for p in spent])), 4) if spent else "-"])
            labels.append("no DP" if eps is None else f"ε {eps:g}")
        rounds = 20 if fast else 30
        partitions = [("iid", {})] if fast else [("iid", {}), ("dirichlet", {"alpha": 0.5})]
        for k, (partition, options) in enumerate(partitions):
            fed = api.federate({"name": f"privacy-federated-{partition}", "runs_dir": str(out / "runs"), "data": DIGITS,
                                "model": model, "tracking": {"uri": "none"}, "train": {"threads": 1, **FED_LOOP}},
                               overwrite=True, quiet=True, clients=CLIENTS, rounds=rounds, partition=partition,
                               central=k == 0, **options)
            info = fed.metrics["federated"]
            if k == 0:
                central = info["central"]["test"]["accuracy"]
                rows.append([f"centralized: the pooled rows, {rounds} epochs", 1, round(central, 4), round(central, 4),
                             round(central, 4), 0.0, "-", "-"])
                labels.append("centralized")
            acc = fed.metrics["test"]["accuracy"]
            skew = info["partition"]["mean_label_skew"]
            rows.append([f"federated: {CLIENTS} clients, {partition}{' 0.5' if options else ''} (label skew {skew:.2f}), "
                         f"{rounds} rounds", 1, round(acc, 4), round(acc, 4), round(acc, 4), round(acc - central, 4), "-", "-"])
            labels.append(f"federated\n{partition}")
    plot = _accuracy_plot(out / "privacy-cost.png", labels, [r[2] for r in rows], [r[3] for r in rows], [r[4] for r in rows])
    by = {r[0]: r for r in rows}
    nodp, eps8 = by["no DP (same model and loop)"], by["DP-SGD, epsilon 8"]
    fed_iid = next(r for r in rows if r[0].startswith("federated") and ", iid" in r[0])
    supported = bool(-eps8[5] < 0.03 and abs(fed_iid[5]) <= 0.02)
    within = all(p["epsilon"] <= p["target_epsilon"] for p in budgets)
    dp = [(r[0].split()[-1], r[2], 100 * r[5], r[7]) for r in rows if r[0].startswith("DP-SGD")]
    feds = [(r[0].split(" (")[0].split(", ", 1)[1], r[2], 100 * r[5]) for r in rows if r[0].startswith("federated")]
    central = by[f"centralized: the pooled rows, {rounds} epochs"][2]
    budget = {"en": "every DP run spent at most its budget" if within else "a DP run spent MORE than its budget",
              "zh": "每次 DP 运行花费的 epsilon 都没有超出预算" if within else "有 DP 运行花费的 epsilon 超出了预算"}
    return Evidence(
        ["setting", "runs (seeds)", "test accuracy (mean)", "lowest", "highest", "difference from its reference",
         "epsilon spent (largest)", "noise multiplier (mean)"], rows, supported,
        {"en": f"Test accuracy, mean of {len(seeds)} seed(s): no DP {nodp[2]:.4f}; "
               + ", ".join(f"epsilon {e} {a:.4f} ({d:+.1f} points, noise multiplier {m:.2f})" for e, a, d, m in dp)
               + f"; {budget['en']}. Federated training ({rounds} rounds) against the same model on the pooled rows "
               f"({central:.4f}): " + "; ".join(f"{p} clients {a:.4f} ({d:+.1f} points)" for p, a, d in feds) + ".",
         "zh": f"测试准确率（{len(seeds)} 个种子的平均）：无 DP 为 {nodp[2]:.4f}；"
               + "，".join(f"epsilon {e} 为 {a:.4f}（{d:+.1f} 个百分点，噪声乘数 {m:.2f}）" for e, a, d, m in dp)
               + f"；{budget['zh']}。联邦训练（{rounds} 轮）与在集中数据上训练的同一模型（{central:.4f}）相比："
               + "；".join(f"{p} 客户端 {a:.4f}（{d:+.1f} 个百分点）" for p, a, d in feds) + "。"},
        [plot])
