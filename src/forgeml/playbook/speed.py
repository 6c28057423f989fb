"""Training-speed entries on the digits MLP: what makes training faster (batch size, accumulation, schedule, fused
AdamW), what to do when it takes too long (early stopping, a schedule sized to the job), and what mixed precision
(bf16) does on a CPU without native bf16."""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from forgeml.playbook import Evidence, entry
from forgeml.playbook.common import bars, timed_ms, train

TARGET = 0.97  # the validation accuracy runs are timed to (262 of the 270 validation digits)
FASTER = [  # (label, run name, train settings): batch 32 is the reference; the others each change one thing
    ("batch 32, lr 0.001", "faster-b32", {"batch_size": 32, "lr": 0.001}),
    ("batch 256, lr 0.008 (8x)", "faster-b256", {"batch_size": 256, "lr": 0.008}),
    ("batch 32 x accumulate 8, lr 0.008", "faster-accum", {"batch_size": 32, "grad_accum": 8, "lr": 0.008}),
    ("batch 256, lr 0.008, onecycle", "faster-onecycle", {"batch_size": 256, "lr": 0.008, "schedule": "onecycle"}),
]
ADAMW = [("fused (forgeml's)", {"fused": True}), ("foreach", {"foreach": True}), ("for-loop", {"foreach": False})]


def digits(out: Path) -> dict:
    """The digits as a table (64 pixel columns px0..px63, class in ``digit``) in Parquet, read without parsing."""
    import pandas as pd
    from sklearn.datasets import load_digits

    d = load_digits()
    df = pd.DataFrame(d.data, columns=[f"px{i}" for i in range(d.data.shape[1])])
    df["digit"] = d.target
    df.to_parquet(Path(out) / "digits.parquet", index=False)
    return {"source": str(Path(out) / "digits.parquet"), "target": "digit"}


def timeline(history: list[dict], target: float = TARGET) -> tuple[list[float], int | None, float | None]:
    """Cumulative training seconds after each epoch (validation not counted), the first epoch (1-based) whose
    validation accuracy is at least ``target`` and the training seconds until then (None, None if never)."""
    seconds = np.cumsum([h["seconds"] for h in history]).tolist()
    first = next((k for k, h in enumerate(history) if h["val_accuracy"] >= target), None)
    return seconds, (None if first is None else first + 1), (None if first is None else seconds[first])


def steps_per_epoch(n: int, batch: int, accumulate: int = 1) -> int:
    """Optimizer steps in an epoch of ``n`` rows, as forgeml's loop takes them (a last batch of one row is dropped)."""
    from forgeml.train.loop import whole_batches

    return -(-whole_batches(n, batch) // accumulate)


def _r(v):
    return "-" if v is None else round(float(v), 4)


def _curves(path: Path, curves: dict, title: str, by_time: bool) -> str:
    """One line per run: validation accuracy against cumulative training seconds (``by_time``, the target dashed),
    else validation loss against epochs."""
    from forgeml.evaluate.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, (x, y) in curves.items():
        ax.plot(x, y, marker=".", label=label, linestyle=":" if label.startswith("early") else "-")
    if by_time:
        ax.axhline(TARGET, color="#888888", linestyle="--", linewidth=1)
        ax.set_ylim(0.8, 1.0)
    ax.set_xscale("log" if by_time else "linear")
    ax.set_yscale("linear" if by_time else "log")
    ax.set_xlabel("training seconds (cumulative, log scale)" if by_time else "epoch")
    ax.set_ylabel("validation accuracy" if by_time else "validation loss (log scale)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    save_figure(fig, Path(path))
    return Path(path).name


def _adamw_ms(shapes: list, settings: dict, calls: int) -> float:
    """Median milliseconds of one AdamW update of parameters of these shapes (random gradients), one thread."""
    import torch

    params = [torch.nn.Parameter(torch.randn(s) * 0.01) for s in shapes]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = torch.optim.AdamW(params, lr=1e-3, **settings)
    return float(np.median(timed_ms(opt.step, calls, warmup=10)))


@entry(
    "train-faster", "training",
    question={"en": "How do I make training faster: batch size, gradient accumulation, schedule, fused optimizer?",
              "zh": "怎样让训练更快：批大小、梯度累积、学习率调度、融合优化器？"},
    answer={"en": "Measure time to a target validation score, not time per epoch or per step. The biggest lever is the "
                  "batch size: a larger batch does the same epoch in fewer, better-vectorized steps, and with the "
                  "learning rate scaled up with it (about linearly for moderate batches, with warmup or a one-cycle "
                  "schedule if the first steps diverge) it needs about as many epochs. Gradient accumulation is not a "
                  "speed-up: it gives the updates of a large batch when memory holds only small ones, but still runs "
                  "every small batch's forward and backward pass and saves only the optimizer updates, so its epochs "
                  "cost more than the large batch's. A schedule does not make a step cheaper; it decides how many "
                  "epochs you need (one-cycle starts slow, then ends smoothly). A fused optimizer (forgeml's AdamW is "
                  "fused) updates all parameters in one kernel: a small but free saving on every step.",
            "zh": "要测的是达到目标验证分数所需的时间，而不是每个 epoch 或每一步的时间。最大的杠杆是批大小：批越大，同一个"
                  " epoch 用的步数越少、每步的向量化越充分；学习率随批大小放大（批不太大时大约按线性放大，若开头几步发散就加"
                  "预热或用 one-cycle 调度），所需的 epoch 数就差不多。梯度累积不是加速手段：显存只放得下小批时，它能给出大批"
                  "的更新，但每个小批的前向和反向照样要算，省下的只是优化器的更新步骤，所以每个 epoch 比真正的大批慢。"
                  "学习率调度不会让一步变便宜，它决定的是需要多少个 epoch（one-cycle 开头慢、结尾平稳）。融合优化器（forgeml 的 "
                  "AdamW 就是融合的）在一个内核里更新全部参数：每一步都能省下一点时间，且没有额外代价。"},
    claim={"en": f"On the digits, the MLP at batch 256 with the learning rate scaled 8x (0.008) reaches {TARGET:.0%} "
                 f"validation accuracy in less training time than at batch 32 (lr 0.001), with test accuracy within 1 "
                 f"point of it; accumulating 8 batches of 32 per step (the same effective batch) reaches the target "
                 f"within one epoch of batch 256 but takes more seconds per epoch.",
           "zh": f"在手写数字数据上，MLP 用批大小 256、学习率放大 8 倍（0.008）达到 {TARGET:.0%} 验证准确率所需的训练时间，"
                 f"少于批大小 32（学习率 0.001），且测试准确率相差不超过 1 个百分点；每步累积 8 个 32 的小批（有效批大小"
                 f"相同）时，达到该目标所需的 epoch 数与批大小 256 相差不超过一个，但每个 epoch 的秒数更多。"},
    caveats={"en": "One small data set (1,797 digits as 64 pixel columns: 1,257 rows train, 270 validate, 270 test), "
                   "forgeml's MLP (256-128), one seed, one torch thread on a 2-core CPU shared with other work, so "
                   "the seconds are noisy; the seconds per epoch are each run's median. Training seconds count the "
                   "training passes only (validation costs the same per epoch in every run). Learning rates were not "
                   "tuned; the runs use a constant rate (forgeml's default is cosine) except the one-cycle one, no "
                   "early stopping, and forgeml keeps each run's best validation epoch for the test score. On a GPU "
                   "small batches leave the device idle, so the batch size matters even more there. The AdamW rows "
                   "time the update alone, on this MLP's parameters. The one-cycle run is not made with --fast.",
             "zh": "只有一个小数据集（1,797 个手写数字，64 个像素列：训练 1,257 行、验证 270 行、测试 270 行），forgeml 的 "
                   "MLP（256-128），一个种子，在与其他任务共享的 2 核 CPU 上用一个 torch 线程，所以秒数有噪声；每个 epoch "
                   "的秒数取每次运行的中位数。训练秒数只计训练部分（每次运行每个 epoch 的验证开销相同）。学习率没有调过；"
                   "除 one-cycle 那次外都用恒定学习率（forgeml 默认是余弦），不早停，forgeml 为测试分数保留每次运行中验证"
                   "最好的 epoch。在 GPU 上小批会让设备闲着，批大小的影响更大。AdamW 那几行只计参数更新本身，参数形状取自"
                   "这个 MLP。--fast 不跑 one-cycle 那次。"},
)
def train_faster(fast: bool, out: Path) -> Evidence:
    import torch

    from forgeml import api

    data, epochs = digits(out), 5 if fast else 20
    rows, curves, got = [], {}, {}
    for label, name, settings in FASTER[:3] if fast else FASTER:  # --fast: without the one-cycle run
        run = train(out, name, data, {"name": "mlp"}, task="classification",
                    train={"epochs": epochs, "threads": 1, "early_stopping": None, "schedule": "constant", **settings})
        history = run.metrics["history"]
        seconds, to_epoch, to_seconds = timeline(history)
        steps = steps_per_epoch(run.manifest["data"]["rows"]["train"], settings["batch_size"],
                                settings.get("grad_accum", 1))
        per_epoch = float(np.median([h["seconds"] for h in history]))
        curves[label] = (seconds, [h["val_accuracy"] for h in history])
        got[name] = (per_epoch, to_epoch, to_seconds, run.metrics["test"]["accuracy"])
        rows.append([label, steps, _r(per_epoch), _r(per_epoch / steps * 1000), to_epoch or f"not in {epochs}",
                     _r(to_seconds), _r(run.metrics["test"]["accuracy"])])
    shapes = [p.shape for p in api.load(out / "runs" / "faster-b32").estimator.parameters()]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        update = {label: _adamw_ms(shapes, settings, 100 if fast else 500) for label, settings in ADAMW}
    finally:
        torch.set_num_threads(threads)
    rows += [[f"AdamW update only, {label}", "-", "-", _r(ms), "-", "-", "-"] for label, ms in update.items()]
    plot = _curves(out / "train-faster.png", curves, "digits, MLP 256-128: validation accuracy against time", True)
    (small, _, small_to, small_acc), (big, big_n, big_to, big_acc), (accum, accum_n, _, _) = (
        got[n] for _, n, _ in FASTER[:3])
    supported = (small_to is not None and big_to is not None and big_to < small_to and abs(big_acc - small_acc) <= 0.01
                 and accum_n is not None and abs(accum_n - big_n) <= 1 and accum > big)

    def said(s, lang):
        if s is None:
            return f"not in {epochs} epochs" if lang == "en" else f"{epochs} 个 epoch 内未达到"
        return f"{s:.2f} s" if lang == "en" else f"{s:.2f} 秒"

    def epochs_said(n, lang):
        return str(n) if n is not None else f"not in {epochs}" if lang == "en" else f"{epochs} 个内未达到"

    one = said(got["faster-onecycle"][2], "en") if "faster-onecycle" in got else "not run (--fast)"
    one_zh = said(got["faster-onecycle"][2], "zh") if "faster-onecycle" in got else "未运行（--fast）"
    fused, loop = update["fused (forgeml's)"], update["for-loop"]
    return Evidence(
        ["setup", "optimizer steps per epoch", "median seconds per epoch", "ms per optimizer step",
         f"epochs to val accuracy >= {TARGET}", f"training seconds to val accuracy >= {TARGET}", "test accuracy"],
        rows, bool(supported),
        {"en": f"Training time to {TARGET:.0%} validation accuracy: batch 32 {said(small_to, 'en')}, batch 256 "
               f"{said(big_to, 'en')}, batch 256 with one-cycle {one}. Seconds per epoch: batch 32 "
               f"{small:.3f}, batch 256 {big:.3f}, 8 x 32 accumulated {accum:.3f} ({accum / big:.1f}x batch 256's). "
               f"Epochs to the target: accumulated {epochs_said(accum_n, 'en')}, batch 256 {epochs_said(big_n, 'en')}. "
               f"Test accuracy: batch 32 {small_acc:.3f}, batch 256 {big_acc:.3f}. One AdamW update of this MLP: "
               f"fused {fused:.3f} ms, for-loop {loop:.3f} ms.",
         "zh": f"达到 {TARGET:.0%} 验证准确率的训练时间：批大小 32 {said(small_to, 'zh')}，批大小 256 {said(big_to, 'zh')}，"
               f"批大小 256 加 one-cycle {one_zh}。每个 epoch 的秒数：批大小 32 {small:.3f}，批大小 256 {big:.3f}，"
               f"8 × 32 累积 {accum:.3f}（是批大小 256 的 {accum / big:.1f} 倍）。达到目标所需 epoch 数："
               f"累积 {epochs_said(accum_n, 'zh')}，批大小 256 {epochs_said(big_n, 'zh')}。测试准确率：批大小 32 {small_acc:.3f}，"
               f"批大小 256 {big_acc:.3f}。这个 MLP 的一次 AdamW 更新：融合版 {fused:.3f} 毫秒，逐参数循环版 "
               f"{loop:.3f} 毫秒。"},
        [plot])


LONG = [  # (label, run name, train settings) on top of forgeml's defaults (batch 64, lr 0.001, cosine schedule)
    ("fixed budget, no early stopping", "long-fixed", {"early_stopping": None}),
    ("early stopping (patience 5)", "long-early", {"early_stopping": {"monitor": "val_loss", "patience": 5}}),
    ("one-cycle schedule over 10 epochs", "long-onecycle",
     {"early_stopping": None, "schedule": "onecycle", "epochs": 10}),
]


@entry(
    "too-long", "training",
    question={"en": "Training takes too long. How do I cut the time without losing accuracy?",
              "zh": "训练太慢了，怎样在不损失准确率的前提下缩短时间？"},
    answer={"en": "Look at the validation curve first: most long runs spend their last epochs on a model that stopped "
                  "improving long before. Early stopping ends training when the validation loss has not improved for "
                  "a few epochs (the patience) and keeps the best epoch; forgeml does this by default (patience 8 on "
                  "val_loss). Because forgeml keeps the best validation epoch anyway, a fixed long budget ends with "
                  "much the same model, only later. Then size the schedule to the job: a cosine or one-cycle schedule "
                  "over fewer epochs brings the learning rate down sooner, so the model settles in the epochs you "
                  "pay for. Judge every change by time to a target validation score and by the final test score, and "
                  "for faster epochs see train-faster (batch size, fused optimizer).",
            "zh": "先看验证曲线：多数拖得很长的训练，最后那些 epoch 花在一个早就不再进步的模型上。早停在验证损失连续几个 "
                  "epoch（耐心值）没有改进时结束训练，并保留最好的那个 epoch；forgeml 默认就开启（在 val_loss 上，耐心值 "
                  "8）。由于 forgeml 无论如何都会保留验证最好的 epoch，固定的长训练预算最终得到的模型差不多，只是更晚得到。"
                  "然后让学习率调度与任务匹配：在更少的 epoch 上用余弦或 one-cycle 调度，学习率更早降下来，模型在你付出"
                  "的那些 epoch 里就能收敛。每个改动都用达到目标验证分数的时间和最终测试分数来评判；想让每个 epoch 更快，"
                  "见 train-faster（批大小、融合优化器）。"},
    claim={"en": "On the digits, early stopping (patience 5 on validation loss) ends no more than 0.5 points below the "
                 "test accuracy of a fixed long budget (100 epochs; 50 with --fast) in less than half its training "
                 "time.",
           "zh": "在手写数字数据上，早停（验证损失上耐心值 5）的测试准确率比固定长预算（100 个 epoch；--fast 时 50 个）"
                 "低不超过 0.5 个百分点，而训练时间不到后者的一半。"},
    caveats={"en": "The digits (1,257 rows train, 270 validate, 270 test; one test digit is 0.37 points), forgeml's "
                   "MLP (256-128) with its defaults (batch 64, AdamW at lr 0.001, cosine schedule with 5% warmup over "
                   "the budget), one seed, one torch thread on a 2-core CPU shared with other work. Training time is "
                   "each run's whole training loop (training, validation and a checkpoint every epoch); the seconds to "
                   "the target count the training passes only. forgeml keeps each run's best validation epoch for the "
                   "test score, which is why the fixed budget does not end on an overfitted model; a loop that keeps "
                   "the last epoch can end worse. The one-cycle run is not made with --fast.",
             "zh": "手写数字数据（训练 1,257 行、验证 270 行、测试 270 行；一个测试样本就是 0.37 个百分点），forgeml 的 "
                   "MLP（256-128）用默认设置（批大小 64，AdamW 学习率 0.001，在整个预算上先 5% 预热再余弦衰减），一个种子，"
                   "在与其他任务共享的 2 核 CPU 上用一个 torch 线程。训练时间是每次运行的整个训练循环（训练、验证以及每个 "
                   "epoch 的检查点）；到达目标的秒数只计训练部分。forgeml 为测试分数保留每次运行中验证最好的 epoch，所以"
                   "固定预算不会停在过拟合的模型上；只保留最后一个 epoch 的训练循环可能更差。--fast 不跑 one-cycle 那次。"},
)
def too_long(fast: bool, out: Path) -> Evidence:
    data, budget = digits(out), 50 if fast else 100
    rows, curves, got = [], {}, {}
    for label, name, settings in LONG[:2] if fast else LONG:  # --fast: without the one-cycle run
        label = label if name != "long-fixed" else f"{label} ({budget} epochs)"
        run = train(out, name, data, {"name": "mlp"}, task="classification",
                    train={"epochs": budget, "threads": 1, **settings})
        history, m = run.metrics["history"], run.metrics["training"]
        _, to_epoch, to_seconds = timeline(history)
        curves[label] = (range(1, len(history) + 1), [h["val_loss"] for h in history])
        got[name] = (len(history), m["seconds"], to_seconds, run.metrics["test"]["accuracy"])
        rows.append([label, len(history), m["best_epoch"] + 1, _r(m["seconds"]), to_epoch or f"not in {len(history)}",
                     _r(to_seconds), _r(run.metrics["test"]["accuracy"])])
    plot = _curves(out / "too-long.png", curves, "digits, MLP 256-128: where each run stopped", False)
    (_, s_fixed, _, acc_fixed), (n_early, s_early, _, acc_early) = got["long-fixed"], got["long-early"]
    supported = acc_early >= acc_fixed - 0.005 and s_early < 0.5 * s_fixed
    cycle = got.get("long-onecycle")
    more = {"en": "" if cycle is None else f" The 10-epoch one-cycle run took {cycle[1]:.1f} s, test accuracy "
                                           f"{cycle[3]:.3f}.",
            "zh": "" if cycle is None else f"10 个 epoch 的 one-cycle 运行用时 {cycle[1]:.1f} 秒，测试准确率 {cycle[3]:.3f}。"}
    return Evidence(
        ["setup", "epochs run", "kept epoch (best val loss)", "training seconds (whole run)",
         f"epochs to val accuracy >= {TARGET}", f"training seconds to val accuracy >= {TARGET}", "test accuracy"],
        rows, bool(supported),
        {"en": f"Early stopping ran {n_early} of {budget} epochs in {s_early:.1f} s ({s_early / s_fixed:.0%} of the "
               f"fixed budget's {s_fixed:.1f} s); test accuracy {acc_early:.3f} against {acc_fixed:.3f} "
               f"({(acc_early - acc_fixed) * 100:+.1f} points)." + more["en"],
         "zh": f"早停在 {budget} 个 epoch 中跑了 {n_early} 个，用时 {s_early:.1f} 秒（固定预算 {s_fixed:.1f} 秒的 "
               f"{s_early / s_fixed:.0%}）；测试准确率 {acc_early:.3f}，固定预算为 {acc_fixed:.3f}（相差 "
               f"{(acc_early - acc_fixed) * 100:+.1f} 个百分点）。" + more["zh"]},
        [plot])


def _native_bf16() -> bool | None:
    """Whether the CPU has bf16 instructions (AVX-512-BF16 or AMX-BF16); None where /proc/cpuinfo is not there."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def matmul_gflops(size: int, dtype, calls: int) -> float:
    """GFLOP/s of a size x size matrix product in ``dtype`` (median of ``calls``), on one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(0)
        a, b = (torch.randn(size, size, generator=gen).to(dtype) for _ in range(2))
        ms = float(np.median(timed_ms(lambda: a @ b, calls)))
    finally:
        torch.set_num_threads(threads)
    return 2 * size ** 3 / (ms / 1000) / 1e9


@entry(
    "mixed-precision", "training",
    question={"en": "What does mixed precision (bf16, fp16) do, and should I turn it on?",
              "zh": "混合精度（bf16、fp16）有什么用？要不要打开？"},
    answer={"en": "Mixed precision runs the big matrix products in 16-bit floats while the weights and their updates "
                  "stay in fp32: half the memory traffic, and on hardware with 16-bit matrix units (GPU tensor cores, "
                  "CPUs with AMX) several times the throughput, usually at no cost in accuracy. bf16 keeps fp32's "
                  "range and needs nothing else; fp16 needs loss scaling (forgeml adds it). Without such hardware the "
                  "16-bit arithmetic runs on slow emulated paths (converting to fp32 and back), so it is slower, not "
                  "faster: on a CPU with AVX2 alone, bf16 matrix products run far below fp32. forgeml's precision: "
                  "auto picks bf16 (or fp16) on a GPU that supports it and fp32 on a CPU; measure before forcing bf16.",
            "zh": "混合精度让大的矩阵乘法用 16 位浮点数计算，而权重及其更新仍保持 fp32：内存读写减半；在有 16 位矩阵运算"
                  "单元的硬件上（GPU 的张量核心、带 AMX 的 CPU）吞吐能高出数倍，通常不损失准确率。bf16 的数值范围与 fp32 "
                  "相同，不需要别的处理；fp16 需要损失缩放（forgeml 会自动加上）。没有这类硬件时，16 位运算走的是模拟的"
                  "慢路径（与 fp32 来回转换），于是更慢而不是更快：在只有 AVX2 的 CPU 上，bf16 矩阵乘法远慢于 fp32。forgeml 的 "
                  "precision: auto 在支持的 GPU 上选 bf16（或 fp16），在 CPU 上选 fp32；强制使用 bf16 之前先测一测。"},
    claim={"en": "On this CPU (AVX2, no AVX-512-BF16 or AMX), training the digits MLP in bf16 is not faster per epoch "
                 "than in fp32, and its test accuracy is within 1 point of fp32's.",
           "zh": "在这台 CPU 上（AVX2，没有 AVX-512-BF16 或 AMX），用 bf16 训练手写数字的 MLP，每个 epoch 并不比 fp32 快，"
                 "测试准确率与 fp32 相差不超过 1 个百分点。"},
    caveats={"en": "forgeml's MLP (256-128, small matrices) on the digits, batch 64, one seed, one torch thread on a "
                   "2-core CPU shared with other work; seconds per epoch are each run's median over its training "
                   "passes. bf16 here is PyTorch's CPU autocast (the matrix products in bf16, weights in fp32); the "
                   "matrix product is timed alone on square fp32 and bf16 matrices. On a GPU with tensor cores or an "
                   "AMX CPU bf16 is expected to be faster instead (not measured here); this entry measures only the "
                   "CPU it runs on (its finding says which).",
             "zh": "forgeml 的 MLP（256-128，矩阵很小）在手写数字数据上，批大小 64，一个种子，在与其他任务共享的 2 核 CPU "
                   "上用一个 torch 线程；每个 epoch 的秒数取每次运行中各 epoch 训练部分用时的中位数。这里的 bf16 是 PyTorch 的 CPU "
                   "自动混合精度（矩阵乘法用 bf16，权重为 fp32）；矩阵乘法单独在 fp32 与 bf16 的方阵上计时。在有张量核心的 "
                   "GPU 或带 AMX 的 CPU 上，bf16 预计反而更快（这里没有测）；本条只测量它所运行的 CPU（结论中写明是哪种）。"},
)
def mixed_precision(fast: bool, out: Path) -> Evidence:
    import torch

    data, epochs, size = digits(out), 4 if fast else 15, 256 if fast else 512
    got = {}
    for precision in ("fp32", "bf16"):
        with warnings.catch_warnings():  # forgeml warns that bf16 on a CPU is slow: that is what is measured here
            warnings.filterwarnings("ignore", message="precision bf16 on CPU")
            run = train(out, f"precision-{precision}", data, {"name": "mlp"}, task="classification",
                        train={"epochs": epochs, "threads": 1, "early_stopping": None, "precision": precision})
        history = run.metrics["history"]
        got[precision] = [float(np.median([h["seconds"] for h in history])), run.metrics["training"]["seconds"],
                          min(h["val_loss"] for h in history), run.metrics["test"]["accuracy"]]
    start = time.perf_counter()
    gflops = [matmul_gflops(size, dtype, 3 if fast else 5) for dtype in (torch.float32, torch.bfloat16)]
    bench = time.perf_counter() - start
    names = ["median seconds per training epoch", "training seconds (whole run)", "best validation loss",
             "test accuracy"]
    rows = [[name, _r(got["fp32"][k]), _r(got["bf16"][k]), _r(got["bf16"][k] / got["fp32"][k])]
            for k, name in enumerate(names)]
    rows.append([f"matmul {size}x{size} GFLOP/s (one thread)", _r(gflops[0]), _r(gflops[1]), _r(gflops[1] / gflops[0])])
    (f_epoch, _, _, f_acc), (b_epoch, _, _, b_acc) = got["fp32"], got["bf16"]
    supported = b_epoch >= f_epoch and abs(b_acc - f_acc) <= 0.01
    kernels, native = torch.backends.cpu.get_cpu_capability(), _native_bf16()
    plot = bars(out / "mixed-precision.png", ["fp32", "bf16 (autocast)"], [f_epoch, b_epoch],
                "median seconds per epoch", f"digits, MLP 256-128, batch 64, one thread ({kernels})")
    cpu = {"en": f"{kernels} kernels, native bf16 {'unknown' if native is None else 'yes' if native else 'no'}",
           "zh": f"{kernels} 内核，原生 bf16："
                 f"{'未知' if native is None else '有' if native else '无'}"}
    return Evidence(
        ["measurement", "fp32", "bf16", "bf16 / fp32"], rows, bool(supported),
        {"en": f"This CPU: {cpu['en']}. An epoch took {b_epoch:.3f} s in bf16 against {f_epoch:.3f} s in fp32 "
               f"({b_epoch / f_epoch:.1f}x); test accuracy {b_acc:.3f} against {f_acc:.3f}. A {size}x{size} matrix "
               f"product ran at {gflops[1]:.1f} GFLOP/s in bf16 against {gflops[0]:.1f} in fp32 (timed in "
               f"{bench:.1f} s).",
         "zh": f"这台 CPU：{cpu['zh']}。bf16 一个 epoch 用 {b_epoch:.3f} 秒，fp32 用 {f_epoch:.3f} 秒（{b_epoch / f_epoch:.1f} "
               f"倍）；测试准确率 bf16 {b_acc:.3f}，fp32 {f_acc:.3f}。{size}x{size} 矩阵乘法 bf16 为 {gflops[1]:.1f} "
               f"GFLOP/s，fp32 为 {gflops[0]:.1f} GFLOP/s（计时共 {bench:.1f} 秒）。"},
        [plot])
