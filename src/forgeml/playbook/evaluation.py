"""Evaluation entries: how much one train/test split's score owes to luck, and comparing two models honestly."""
from __future__ import annotations

from pathlib import Path

import numpy as np

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


def _bootstrap_auc(y: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC-AUC of ``score`` for the 0/1 labels ``y`` in each resample: ``counts`` [B, n] says how often each row was
    drawn (the Mann-Whitney statistic with weights; tied scores count one half)."""
    order = np.argsort(score, kind="mergesort")
    s, pos_row, w = score[order], y[order].astype(np.int64), counts[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # each run of tied scores is one group
    pos = np.add.reduceat(w * pos_row, starts, axis=1)
    neg = np.add.reduceat(w * (1 - pos_row), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negatives scored strictly lower
    return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def _histograms(path: Path, diffs: dict[str, np.ndarray], cis: dict[str, tuple[float, float]]) -> str:
    from forgeml.evaluate.plots import pyplot, save_figure

    plt = pyplot()

    fig, axes = plt.subplots(1, len(diffs), figsize=(8, 3.2))
    for ax, (name, d) in zip(axes, diffs.items()):
        ax.hist(d, bins=40, color="#2b6cb0", alpha=0.8)
        for v in cis[name]:
            ax.axvline(v, color="#2b6cb0", linestyle="--", linewidth=1)
        ax.axvline(0, color="#c53030", linewidth=1.5)
        ax.set_xlabel(f"{name}: MLP - LightGBM")
        ax.set_title(f"paired bootstrap, 95% CI [{cis[name][0]:.4f}, {cis[name][1]:.4f}]", fontsize=9)
    axes[0].set_ylabel("resamples")
    save_figure(fig, Path(path))
    return Path(path).name


RESAMPLES = 2000


@entry(
    "compare-two-models", "evaluation",
    question={"en": "Model B scores higher than model A on my test set. Is B really better?",
              "zh": "模型 B 在测试集上的分数比模型 A 高。B 真的更好吗？"},
    answer={"en": "Only if the gap is larger than what the test rows' luck could produce. Score both models on the same "
                  "test rows and resample those rows (a paired bootstrap, e.g. 2,000 resamples) to get a 95% "
                  "confidence interval of the difference: if it includes 0, the test set cannot tell them apart. "
                  "Pairing matters: both models answer the same rows, so McNemar's test (on the rows only one model "
                  "gets right) is the right significance test, and it is sharper than a two-proportion z-test, which "
                  "suits an A/B test where each model serves different users. And choose the metric first: two "
                  "models can tie on accuracy and differ on ranking (ROC-AUC).",
            "zh": "只有当差距大于测试行的“运气”所能造成的差距时才算。让两个模型在同一批测试行上打分，并对这些行重采样"
                  "（配对自助法，例如 2,000 次）得到差值的 95% 置信区间：如果区间包含 0，这个测试集就分不出两者的高下。"
                  "配对很重要：两个模型回答的是同一批行，所以合适的显著性检验是 McNemar 检验（只看只有一个模型答对的行），"
                  "它比双比例 z 检验更灵敏；双比例 z 检验适用于每个模型服务不同用户的 A/B 测试。还要先选好指标：两个模型"
                  "可能准确率打平，排序能力（ROC-AUC）却不同。"},
    claim={"en": "On Default's 1,500 test rows, the accuracy difference between an MLP and LightGBM is too small to "
                 "call: its paired bootstrap 95% confidence interval includes 0.",
           "zh": "在 Default 的 1,500 个测试行上，MLP 与 LightGBM 的准确率差距小到无法下结论：差值的配对自助法 95% "
                 "置信区间包含 0。"},
    caveats={"en": "One split (seed 0) and one training run per model: the interval covers the test rows' luck, not the "
                   "training seed's or the split's. Percentile bootstrap with 2,000 resamples (seed 0); accuracy at the "
                   "0.5 threshold; about 50 defaulters in the test split. 2-core CPU.",
             "zh": "只有一个划分（种子 0），每个模型只训练一次：区间只反映测试行的运气，不包括训练种子或划分带来的波动。"
                   "百分位自助法，重采样 2,000 次（种子 0）；准确率按 0.5 阈值计算；测试集中约有 50 个违约客户。"
                   "在 2 核 CPU 上运行。"},
)
def compare_two_models(fast: bool, out: Path) -> Evidence:
    from scipy import stats

    from forgeml import api

    data = {"source": "bundled:default", "target": "default"}
    one = {"threads": 1}  # small models: one thread is as quick, and steadier on a shared CPU
    runs = {"LightGBM": train(out, "compare-lightgbm", data, {"name": "lightgbm", "n_estimators": 100 if fast else 500},
                              train=one),
            "MLP": train(out, "compare-mlp", data, {"name": "mlp"}, train={**one, "epochs": 3 if fast else 30})}
    right, score = {}, {}
    for name, run in runs.items():
        model = api.load(run.run_dir)
        test = api.test_rows(model)
        pred = model.predict(test)
        truth = test["default"].astype(str).to_numpy()
        right[name] = pred["prediction"].astype(str).to_numpy() == truth
        score[name] = pred["proba_Yes"].to_numpy(dtype=np.float64)
    y = truth == "Yes"
    a, b = right["LightGBM"], right["MLP"]
    n = len(a)
    idx = np.random.default_rng(0).integers(0, n, (RESAMPLES, n))  # the same resampled rows for both models
    counts = np.bincount((np.arange(RESAMPLES)[:, None] * n + idx).ravel(), minlength=RESAMPLES * n).reshape(RESAMPLES, n)
    acc = {k: float(v.mean()) for k, v in right.items()}
    auc = {k: float(_bootstrap_auc(y, s, np.ones((1, n), dtype=np.int64))[0]) for k, s in score.items()}
    diffs = {"accuracy": counts @ (b.astype(np.int64) - a.astype(np.int64)) / n,
             "ROC-AUC": _bootstrap_auc(y, score["MLP"], counts) - _bootstrap_auc(y, score["LightGBM"], counts)}
    cis = {k: tuple(float(v) for v in np.percentile(d, [2.5, 97.5])) for k, d in diffs.items()}
    d_acc, d_auc = acc["MLP"] - acc["LightGBM"], auc["MLP"] - auc["LightGBM"]
    # A/B view: two independent proportions (pooled z-test, Wald interval), then the paired view (McNemar, exact)
    x_a, x_b = int(a.sum()), int(b.sum())
    pooled = (x_a + x_b) / (2 * n)
    z = d_acc / np.sqrt(pooled * (1 - pooled) * 2 / n) if 0 < pooled < 1 else 0.0
    p_z = float(2 * stats.norm.sf(abs(z)))
    half = 1.96 * np.sqrt(acc["LightGBM"] * (1 - acc["LightGBM"]) / n + acc["MLP"] * (1 - acc["MLP"]) / n)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p_mc = float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0

    def interval(lo, hi):
        return f"[{lo:.4f}, {hi:.4f}]"

    rows = [[f"accuracy: paired bootstrap ({RESAMPLES} resamples of the test rows)", round(acc["LightGBM"], 4),
             round(acc["MLP"], 4), round(d_acc, 4), interval(*cis["accuracy"]), "-"],
            ["ROC-AUC: paired bootstrap (the same resamples)", round(auc["LightGBM"], 4), round(auc["MLP"], 4),
             round(d_auc, 4), interval(*cis["ROC-AUC"]), "-"],
            ["accuracy: two-proportion z-test (unpaired, as in an A/B test)", f"{x_a}/{n} right", f"{x_b}/{n} right",
             round(d_acc, 4), interval(d_acc - half, d_acc + half), round(p_z, 4)],
            ["accuracy: McNemar exact test (paired)", f"{only_a} right only here", f"{only_b} right only here",
             round(d_acc, 4), "-", round(p_mc, 4)]]
    lo, hi = cis["accuracy"]
    plot = _histograms(out / "compare-two-models.png", diffs, cis)
    excludes = {"en": lambda ci: "excludes 0" if ci[0] > 0 or ci[1] < 0 else "includes 0",
                "zh": lambda ci: "不包含 0" if ci[0] > 0 or ci[1] < 0 else "包含 0"}
    return Evidence(
        ["test", "LightGBM", "MLP", "MLP - LightGBM", "95% CI", "p-value"], rows, bool(lo <= 0 <= hi),
        {"en": f"Test accuracy: LightGBM {acc['LightGBM']:.4f}, MLP {acc['MLP']:.4f} (difference {100 * d_acc:+.2f} "
               f"points, {x_b - x_a:+d} of {n} rows); the paired bootstrap 95% CI {interval(lo, hi)} "
               f"{excludes['en']((lo, hi))}. The models disagree on {only_a + only_b} rows ({only_a} only LightGBM "
               f"gets right, {only_b} only the MLP): McNemar p = {p_mc:.3f}, against p = {p_z:.3f} for the unpaired "
               f"z-test, whose interval is {(2 * half) / (hi - lo):.1f}x as wide. On ROC-AUC the MLP leads by "
               f"{d_auc:+.4f}, CI {interval(*cis['ROC-AUC'])}, which {excludes['en'](cis['ROC-AUC'])}.",
         "zh": f"测试准确率：LightGBM {acc['LightGBM']:.4f}，MLP {acc['MLP']:.4f}（相差 {100 * d_acc:+.2f} 个百分点，"
               f"即 {n} 行中的 {x_b - x_a:+d} 行）；配对自助法 95% 置信区间 {interval(lo, hi)}，{excludes['zh']((lo, hi))}。"
               f"两个模型在 {only_a + only_b} 行上意见不同（{only_a} 行只有 LightGBM 答对，{only_b} 行只有 MLP 答对）："
               f"McNemar 检验 p = {p_mc:.3f}，而不配对的 z 检验 p = {p_z:.3f}，其区间宽度是配对区间的 "
               f"{(2 * half) / (hi - lo):.1f} 倍。按 ROC-AUC，MLP 领先 {d_auc:+.4f}，置信区间 "
               f"{interval(*cis['ROC-AUC'])}，{excludes['zh'](cis['ROC-AUC'])}。"},
        [plot])
