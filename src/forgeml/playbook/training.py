"""Training entries: which optimizer, measured as validation-loss curves of the same MLP on the same split."""
from __future__ import annotations

from pathlib import Path

from forgeml.playbook import Evidence, entry
from forgeml.playbook.common import train

TARGET_LOSS = 0.15  # the validation loss each optimizer is timed to (cross-entropy, 10 classes)
OPTIMIZERS = [  # (label, train settings): each at its usual learning rate, plus plain SGD at ten times it
    ("SGD (lr 0.01)", {"optimizer": "sgd", "momentum": 0.0, "lr": 0.01}),
    ("SGD + momentum 0.9 (lr 0.01)", {"optimizer": "sgd", "momentum": 0.9, "lr": 0.01}),
    ("AdamW (lr 0.001)", {"optimizer": "adamw", "lr": 0.001}),
    ("SGD (lr 0.1)", {"optimizer": "sgd", "momentum": 0.0, "lr": 0.1}),
]


def digits_table(out: Path) -> Path:
    """The digits (bundled:digits, scikit-learn's 1,797 8x8 images) as a table: 64 pixel columns px0..px63 (0-16)
    and the class in ``digit``; written to ``out/digits.csv``."""
    import pandas as pd
    from sklearn.datasets import load_digits

    d = load_digits()
    df = pd.DataFrame(d.data, columns=[f"px{i}" for i in range(d.data.shape[1])])
    df["digit"] = d.target
    path = Path(out) / "digits.csv"
    df.to_csv(path, index=False)
    return path


def epochs_to(history: list[dict], key: str, target: float) -> int | None:
    """The first epoch (1-based) whose ``key`` is at or below ``target``; None if no epoch gets there."""
    return next((h["epoch"] + 1 for h in history if h[key] <= target), None)


def _curves(path: Path, curves: dict[str, list[float]], target: float) -> str:
    from forgeml.evaluate.plots import pyplot, save_figure

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for k, (label, losses) in enumerate(curves.items()):
        ax.plot(range(1, len(losses) + 1), losses, marker=".", label=label, linestyle="--" if k == 3 else "-")
    ax.axhline(target, color="#888888", linestyle="--", linewidth=1)
    ax.text(1, target, f" {target}", va="bottom", fontsize=8, color="#555555")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss (log scale)")
    ax.set_title("digits (64 pixels as a table), MLP 256-128, same split and seed", fontsize=10)
    ax.legend(fontsize=8)
    save_figure(fig, Path(path))
    return Path(path).name


@entry(
    "which-optimizer", "training",
    question={"en": "Which optimizer should I use: SGD, SGD with momentum, or Adam/AdamW?",
              "zh": "该用哪种优化器：SGD、带动量的 SGD，还是 Adam/AdamW？"},
    answer={"en": "Start with AdamW at its usual learning rate (0.001, forgeml's default): it needs the least tuning and "
                  "gets to a good validation loss in few epochs. SGD with momentum (0.9) can match it, and is still "
                  "the choice of many image-model recipes, but it needs its learning rate tuned. Plain SGD at the same "
                  "learning rate is the slow one, and much of momentum's head start is simply a larger step: with "
                  "momentum 0.9 the updates add up to about 10x the learning rate, so plain SGD at 10x the rate "
                  "follows almost the same curve. Compare optimizers on validation-loss curves of the same model on "
                  "the same split, each at a learning rate that suits it, never all at one rate.",
            "zh": "先用 AdamW，学习率取常用的 0.001（forgeml 的默认值）：它最不需要调参，几个 epoch 就能到达不错的验证"
                  "损失。带动量（0.9）的 SGD 可以追平它，至今仍是许多图像模型训练方案的选择，但它的学习率需要调。"
                  "同样学习率下的普通 SGD 最慢，而动量的领先很大程度上只是步子更大：动量 0.9 时更新累加起来约为学习率的"
                  " 10 倍，所以学习率放大 10 倍的普通 SGD 几乎走出同一条曲线。比较优化器要看同一个模型在同一个划分上的"
                  "验证损失曲线，每个优化器用适合它的学习率，而不是都用同一个学习率。"},
    claim={"en": f"On the digits, the same MLP reaches a validation loss of {TARGET_LOSS} with AdamW (lr 0.001) and "
                 f"with SGD + momentum 0.9 (lr 0.01) in at most half the epochs plain SGD at lr 0.01 needs (or plain "
                 f"SGD never gets there), and plain SGD at lr 0.1 gets there within one epoch of the momentum run.",
           "zh": f"在手写数字数据上，同一个 MLP 用 AdamW（学习率 0.001）和带动量 0.9 的 SGD（学习率 0.01）把验证损失降到 "
                 f"{TARGET_LOSS} 所需的 epoch 数，不超过学习率 0.01 的普通 SGD 的一半（或普通 SGD 根本到不了）；而学习率 "
                 f"0.1 的普通 SGD 与动量版相差不超过一个 epoch。"},
    caveats={"en": "One small data set (1,797 digits, their 64 pixels as table columns: 1,257 rows train, 270 "
                   "validate, 270 test), one model (forgeml's MLP, 256-128, dropout 0.1), one seed. All runs share "
                   "forgeml's other defaults: batch 64, a cosine schedule with 5% warmup over the epochs given, "
                   "gradient clipping at 1.0, weight decay 1e-4; early stopping is off so every curve runs to the end, "
                   "but forgeml still keeps each run's best validation epoch for the test score. forgeml's SGD with "
                   "momentum is Nesterov's form. Learning rates were not tuned: they are the usual starting points "
                   "(0.01 for SGD, 0.001 for AdamW), plus SGD at 0.1. 2-core CPU.",
             "zh": "只有一个小数据集（1,797 个手写数字，64 个像素作为表格列：训练 1,257 行、验证 270 行、测试 270 行），"
                   "一种模型（forgeml 的 MLP，256-128，dropout 0.1），一个种子。所有运行共用 forgeml 的其他默认设置：批大小 "
                   "64，在给定 epoch 数上先 5% 线性预热再余弦衰减，梯度裁剪 1.0，权重衰减 1e-4；关闭了早停，让每条曲线"
                   "都跑到最后，但 forgeml 仍会为测试分数保留每次运行中验证最好的 epoch。forgeml 带动量的 SGD 是 Nesterov "
                   "形式。学习率没有调过：都是常用的起点（SGD 0.01，AdamW 0.001），另加 0.1 的 SGD。在 2 核 CPU 上运行。"},
)
def which_optimizer(fast: bool, out: Path) -> Evidence:
    data = {"source": str(digits_table(out)), "target": "digit"}
    epochs = 10 if fast else 30
    rows, curves, reached = [], {}, {}
    for k, (label, settings) in enumerate(OPTIMIZERS):
        run = train(out, f"optimizer-{k}", data, {"name": "mlp"}, task="classification",
                    train={"epochs": epochs, "threads": 1, "early_stopping": None, **settings})
        history = run.metrics["history"]
        best = min(history, key=lambda h: h["val_loss"])
        reached[label] = epochs_to(history, "val_loss", TARGET_LOSS)
        curves[label] = [h["val_loss"] for h in history]
        rows.append([label, reached[label] if reached[label] is not None else f"not in {epochs}",
                     round(best["val_loss"], 4), best["epoch"] + 1, round(run.metrics["test"]["accuracy"], 4),
                     round(run.metrics["test"]["log_loss"], 4)])
    plot = _curves(out / "which-optimizer.png", curves, TARGET_LOSS)
    sgd, momentum, adamw, sgd_big = (reached[label] for label, _ in OPTIMIZERS)
    fast_ones = [momentum, adamw]
    supported = (None not in fast_ones and (sgd is None or sgd >= 2 * max(fast_ones))
                 and sgd_big is not None and abs(sgd_big - momentum) <= 1)

    def said(n, lang):
        if n is None:
            return f"never (in {epochs} epochs)" if lang == "en" else f"始终没有到达（{epochs} 个 epoch 内）"
        return f"{n} epochs" if lang == "en" else f"{n} 个 epoch"

    acc = {r[0]: r[4] for r in rows}
    best_val = {r[0]: (r[2], r[3]) for r in rows}
    names = [label for label, _ in OPTIMIZERS]
    return Evidence(
        ["optimizer", f"epochs to val loss <= {TARGET_LOSS}", "best val loss", "epoch of best val loss",
         "test accuracy", "test log loss"], rows, bool(supported),
        {"en": f"Epochs to a validation loss of {TARGET_LOSS}: AdamW {said(adamw, 'en')}, SGD + momentum "
               f"{said(momentum, 'en')}, plain SGD at lr 0.01 {said(sgd, 'en')}, plain SGD at lr 0.1 "
               f"{said(sgd_big, 'en')}. Best validation loss: "
               + "; ".join(f"{n} {best_val[n][0]:.3f} (epoch {best_val[n][1]})" for n in names)
               + ". Test accuracy: " + "; ".join(f"{n} {acc[n]:.3f}" for n in names) + ".",
         "zh": f"验证损失降到 {TARGET_LOSS} 所需：AdamW {said(adamw, 'zh')}，带动量 SGD {said(momentum, 'zh')}，学习率 0.01 "
               f"的普通 SGD {said(sgd, 'zh')}，学习率 0.1 的普通 SGD {said(sgd_big, 'zh')}。最好的验证损失："
               + "；".join(f"{n} {best_val[n][0]:.3f}（第 {best_val[n][1]} 个 epoch）" for n in names)
               + "。测试准确率：" + "；".join(f"{n} {acc[n]:.3f}" for n in names) + "。"},
        [plot])
