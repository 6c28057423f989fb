"""Not enough compute: MiniLM-L6 on tweets frozen (only the head trains), with LoRA adapters, and fully fine-tuned,
through forgeml.api.train with the config keys benchmarks/lora.py uses, on the same rows, split, seed and epoch."""
from __future__ import annotations

from pathlib import Path

from forgeml.playbook import Evidence, entry
from forgeml.playbook.common import train

# label: (model config, learning rate). The config keys are benchmarks/lora.py's. Each rate was chosen on the
# validation split of the full-size run from a log grid (head 3e-3..3e-1, LoRA 1e-3..3e-2, full 5e-5..1e-3): in one
# short epoch each method wants more than its usual rate (LoRA 1e-3, full 5e-5)
VARIANTS = {"frozen encoder (head only)": ({"name": "minilm", "freeze_encoder": True}, 1e-1),
            "LoRA r=8 (query, value)": ({"name": "minilm", "lora": {"r": 8, "alpha": 16}}, 1e-2),
            "full fine-tuning": ({"name": "minilm"}, 3e-4)}
THREADS = 1  # on a CPU shared with other work, two torch threads stall each other (measured here: 8-16x slower per epoch)
SPLIT = {"val": 0.1, "test": 0.3}


def state_mib(parameters: int, trainable: int) -> float:
    """fp32 weights (4 bytes each) plus, for each trained weight, its gradient and AdamW's two moments (12 bytes):
    what training holds besides the activations."""
    return (4 * parameters + 12 * trainable) / 2 ** 20


def tweets_subset(out: Path, rows: int, seed: int = 0) -> str:
    """``rows`` tweets drawn from bundled:tweets (seeded), as a CSV in ``out``; its path."""
    from forgeml.data.bundled import load_bundled

    df, _ = load_bundled("tweets")
    path = Path(out) / f"tweets-{rows}.csv"
    df.sample(rows, random_state=seed).to_csv(path, index=False)
    return str(path)


def _plot(path: Path, labels: list[str], rows: list[list]) -> str:
    from forgeml.evaluate.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    short = [label.split(" (")[0].replace("fine-tuning", "fine-tune") for label in labels]
    colors = ["#888888", "#2b6cb0", "#c05621"]
    for ax, col, title, log in ((axes[0], 2, "trainable parameters", True), (axes[1], 5, "seconds per epoch", False),
                                (axes[2], 6, "test accuracy", False)):
        values = [r[col] for r in rows]
        ax.bar(short, values, color=colors)
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:,}" if isinstance(v, int) else f"{v:.3g}", ha="center", va="bottom", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
        if log:
            ax.set_yscale("log")
    axes[2].set_ylim(0, 1)
    fig.suptitle("MiniLM-L6 (22.7M weights) on tweets: what each way of training costs and scores", fontsize=10)
    save_figure(fig, path)
    return path.name


@entry(
    "lora", "training",
    question={"en": "I don't have the compute to fine-tune a large model. What is \"large\", and what do a frozen "
                    "encoder and LoRA cost and give up against full fine-tuning?",
              "zh": "我没有足够的算力微调大模型。多大算“大”？冻结编码器和 LoRA 与完整微调相比，各省多少、损失多少？"},
    answer={"en": "Size is counted in parameters. MiniLM-L6, the text encoder forgeml ships (`model: minilm`), has 22.7M "
                  "(6 layers 384 wide), 87 MiB in fp32; BERT-base has 110M, GPT-2 124M to 1.5B, Llama 2 7B to 70B, "
                  "GPT-3 175B. Full fine-tuning with AdamW keeps a gradient and two moments for every weight, about 16 "
                  "bytes per parameter before activations: 350 MiB for MiniLM, over 100 GB for a 7B model. Three "
                  "cheaper ways, from cheapest: keep the encoder frozen and train only a head on its features "
                  "(`freeze_encoder: true`); train low-rank adapters in the attention (`lora: {r: 8}`, PEFT), which "
                  "update well under 1% of the weights and are merged afterwards, so the served model is a plain "
                  "MiniLM; or fine-tune everything, usually the most accurate. The saving of LoRA is in the gradients "
                  "and optimizer state (and in storing one small adapter per task), not in the forward pass, which "
                  "still runs the whole model; `forgeml compress` (int8, pruning, distillation) is the tool for a "
                  "cheaper model at inference. Measure all three on your own data: the table shows what each cost and "
                  "scored here.",
            "zh": "模型大小按参数量计。forgeml 自带的文本编码器 MiniLM-L6（`model: minilm`）有 2,270 万个参数（6 层，宽 384），"
                  "fp32 下 87 MiB；BERT-base 有 1.1 亿，GPT-2 有 1.24 亿到 15 亿，Llama 2 有 70 亿到 700 亿，GPT-3 有 1,750 亿。"
                  "用 AdamW 做完整微调时，每个权重都要保存一个梯度和两个动量，不算激活值约每个参数 16 字节：MiniLM 需要 "
                  "350 MiB，70 亿参数的模型超过 100 GB。更省的做法，从最省的说起：冻结编码器，只在它的特征上训练一个分类头"
                  "（`freeze_encoder: true`）；在注意力层里训练低秩适配器（`lora: {r: 8}`，PEFT），只更新远少于 1% 的权重，"
                  "训练后合并回权重，所以部署的仍是普通的 MiniLM；或者微调全部参数，通常最准。LoRA 省下的是梯度和优化器"
                  "状态（以及每个任务只需存一个小适配器），而不是前向计算，前向仍要跑完整个模型；想让推理更便宜，用 "
                  "`forgeml compress`（int8、剪枝、蒸馏）。在你自己的数据上把三种都测一遍：下表是它们在这里的花费和得分。"},
    claim={"en": "On tweets (Android or iPhone), LoRA trains under 1% of MiniLM's weights, its epoch takes less time "
                 "than full fine-tuning's, and its test accuracy is within 3 points of full fine-tuning's; the frozen "
                 "encoder scores below LoRA.",
           "zh": "在 tweets（Android 还是 iPhone）上，LoRA 训练的权重不到 MiniLM 的 1%，每个 epoch 比完整微调用时更短，测试"
                 "准确率与完整微调相差不超过 3 个百分点；冻结编码器的得分低于 LoRA。"},
    caveats={"en": "Cut down to fit 2 minutes on a 2-core CPU: 1,200 of the 8,614 tweets (--fast: 200), texts truncated "
                   "to 32 tokens (--fast: 16), one epoch, batch 32, one torch thread, one seed, one split (720 "
                   "training rows, 360 test rows: a point of accuracy is about 4 tweets). Each variant's learning rate "
                   "was chosen on the validation split (121 rows) from a small grid, in a separate run (head 3e-3 to "
                   "3e-1, LoRA 1e-3 to 3e-2, full 5e-5 to 1e-3): in one short epoch each wants more than its usual "
                   "rate, and at the usual ones (LoRA 1e-3, full 5e-5, as benchmarks/lora.py) LoRA scored 0.617 and "
                   "full fine-tuning 0.722 here. More rows and epochs raise every variant: benchmarks/lora.py, on all "
                   "the tweets at full length, measured full fine-tuning at 0.844 and LoRA at 0.830, LoRA's epoch at "
                   "0.87x full's. The memory column is computed (weights, gradients, AdamW moments), not measured; "
                   "activations come on top (LoRA and full fine-tuning keep about the same for the backward pass; the "
                   "frozen encoder keeps none). Times on a machine shared with other work.",
             "zh": "为了在 2 核 CPU 上 2 分钟内跑完做了删减：8,614 条推文中只取 1,200 条（--fast：200 条），文本截断到 32 个"
                   " token（--fast：16 个），一个 epoch，批大小 32，一个 torch 线程，一个种子，一种划分（训练 720 行，测试 "
                   "360 行：1 个百分点约 4 条推文）。每种做法的学习率是在另一次运行中、在验证集（121 行）上从一个小网格里"
                   "选出的（分类头 3e-3 到 3e-1，LoRA 1e-3 到 3e-2，完整微调 5e-5 到 1e-3）：只训练一个很短的 epoch 时，"
                   "每种做法都需要比常用值更大的学习率；用常用值（LoRA 1e-3、完整微调 5e-5，与 benchmarks/lora.py 相同）"
                   "时，这里 LoRA 得 0.617，完整微调得 0.722。更多数据和 epoch 会提高每种做法的分数：benchmarks/lora.py 在"
                   "全部推文、完整长度上测得完整微调 0.844、LoRA 0.830，LoRA 每个 epoch 的用时是完整微调的 0.87 倍。内存"
                   "一列是计算值（权重、梯度、AdamW 动量），不是测量值；激活值另算（LoRA 和完整微调为反向传播保存的差不多，"
                   "冻结编码器不需要保存）。计时所在的机器与其他任务共享。"},
)
def lora(fast: bool, out: Path) -> Evidence:
    data = {"source": tweets_subset(out, 200 if fast else 1200), "target": "source", "split": SPLIT,
            "max_text_tokens": 16 if fast else 32}
    rows = []
    for k, (label, (model, lr)) in enumerate(VARIANTS.items()):
        run = train(out, f"lora-{k}", data, model,
                    train={"epochs": 1, "batch_size": 32, "lr": lr, "threads": THREADS, "early_stopping": None})
        m = run.metrics
        n, trained = m["training"]["parameters"], m["training"]["trainable_parameters"]
        rows.append([label, lr, trained, n, round(state_mib(n, trained), 1), round(m["history"][0]["seconds"], 2),
                     round(m["test"]["accuracy"], 4), round(m["test"]["roc_auc"], 4)])
    frozen, lora_, full = rows
    share = lora_[2] / full[2]
    supported = share < 0.01 and lora_[5] < full[5] and full[6] - lora_[6] <= 0.03 and frozen[6] < lora_[6]
    plot = _plot(out / "lora.png", list(VARIANTS), rows)
    return Evidence(
        ["variant", "lr", "trainable parameters", "parameters", "weights + grads + AdamW MiB (computed)",
         "s / epoch", "test accuracy", "test ROC-AUC"], rows, bool(supported),
        {"en": f"LoRA trained {lora_[2]:,} weights ({100 * share:.2f}% of full fine-tuning's {full[2]:,}); its epoch took "
               f"{lora_[5]:.1f} s against {full[5]:.1f} s ({lora_[5] / full[5]:.2f}x) and the frozen encoder's "
               f"{frozen[5]:.1f} s. Test accuracy: frozen {frozen[6]:.3f}, LoRA {lora_[6]:.3f}, full fine-tuning "
               f"{full[6]:.3f} (LoRA {100 * (lora_[6] - full[6]):+.1f} points against full).",
         "zh": f"LoRA 训练了 {lora_[2]:,} 个权重（完整微调 {full[2]:,} 个的 {100 * share:.2f}%）；它的一个 epoch 用时 "
               f"{lora_[5]:.1f} 秒，完整微调 {full[5]:.1f} 秒（{lora_[5] / full[5]:.2f} 倍），冻结编码器 {frozen[5]:.1f} "
               f"秒。测试准确率：冻结 {frozen[6]:.3f}，LoRA {lora_[6]:.3f}，完整微调 {full[6]:.3f}（LoRA 比完整微调 "
               f"{100 * (lora_[6] - full[6]):+.1f} 个百分点）。"},
        [plot])
