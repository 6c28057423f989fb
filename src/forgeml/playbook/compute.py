"""Training and compute: how much memory and time a model's training needs, from its parameter count."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from forgeml.playbook import Evidence, entry
from forgeml.playbook.common import timed_ms

BYTES_PER_PARAM = {"weights": 4, "gradients": 4, "Adam state": 8}  # fp32; Adam keeps two moments per parameter


@entry(
    "compute-calculator", "training",
    question={"en": "How much compute and memory does training a model need?",
              "zh": "训练一个模型需要多少算力和内存？"},
    answer={"en": "Count the parameters N. Training in fp32 with Adam holds about 16 bytes per parameter (weights 4, "
                  "gradients 4, Adam's two moments 8) plus the activations. Each training example costs about 6N "
                  "floating-point operations (2N forward, 4N backward) for dense layers; divide by the matrix-multiply "
                  "throughput you measure on your hardware for the time. Check the estimate against one real step "
                  "before planning a long run.",
            "zh": "先数参数量 N。用 Adam 做 fp32 训练，每个参数约占 16 字节（权重 4、梯度 4、Adam 的两个动量 8），"
                  "另加激活值。对全连接层，每个训练样本约需 6N 次浮点运算（前向 2N，反向 4N）；除以在自己硬件上测得的"
                  "矩阵乘法吞吐就得到时间。在规划长时间训练之前，先用一次真实的训练步验证这个估算。"},
    claim={"en": "For an MLP on this machine, the time of one real training step (forward, backward, Adam) is within "
                 "0.5x to 3x of 6 x parameters x batch divided by the measured matmul throughput.",
           "zh": "在这台机器上，一个 MLP 真实训练一步（前向、反向、Adam）的用时，在“6 × 参数量 × 批大小 ÷ 实测矩阵乘法"
                 "吞吐”估算值的 0.5 到 3 倍之间。"},
    caveats={"en": "Dense layers only (convolutions and attention have their own counts); fp32 on a 2-core CPU shared "
                   "with other work; activations' memory not counted.",
             "zh": "只算全连接层（卷积和注意力有各自的计算量）；在与其他任务共享的 2 核 CPU 上用 fp32；"
                   "未计入激活值的内存。"},
)
def compute_calculator(fast: bool, out: Path) -> Evidence:
    import torch

    torch.manual_seed(0)
    width, batch = (1024, 128) if fast else (2048, 256)
    size = 1024 if fast else 2048
    a, b = torch.randn(size, size), torch.randn(size, size)
    matmul_ms = float(np.mean(timed_ms(lambda: a @ b, 5 if fast else 10)))
    gflops = 2 * size ** 3 / (matmul_ms / 1000) / 1e9
    net = torch.nn.Sequential(torch.nn.Linear(784, width), torch.nn.ReLU(), torch.nn.Linear(width, width),
                              torch.nn.ReLU(), torch.nn.Linear(width, 10))
    n = sum(p.numel() for p in net.parameters())
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 784), torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    measured = float(np.mean(timed_ms(step, 5 if fast else 20)))
    predicted = 6 * n * batch / (gflops * 1e9) * 1000
    memory = {k: n * v / 2 ** 20 for k, v in BYTES_PER_PARAM.items()}
    ratio = measured / predicted
    rows = [["parameters N", f"{n:,}"], *[[f"{k} (MiB)", f"{v:.1f}"] for k, v in memory.items()],
            ["FLOPs per step: 6 x N x batch", f"{6 * n * batch / 1e9:.2f} G (batch {batch})"],
            ["measured matmul throughput", f"{gflops:.1f} GFLOP/s ({size}x{size} fp32)"],
            ["predicted step (ms)", f"{predicted:.2f}"], ["measured step (ms)", f"{measured:.2f}"],
            ["measured / predicted", f"{ratio:.2f}"]]
    return Evidence(
        ["quantity", "value"], rows, 0.5 <= ratio <= 3,
        {"en": f"An MLP of {n:,} parameters needs {sum(memory.values()):.0f} MiB for weights, gradients and Adam; one "
               f"step of batch {batch} was predicted at {predicted:.1f} ms from {gflops:.0f} GFLOP/s and took "
               f"{measured:.1f} ms ({ratio:.2f}x).",
         "zh": f"一个 {n:,} 参数的 MLP，权重、梯度和 Adam 状态共需 {sum(memory.values()):.0f} MiB；按 {gflops:.0f} "
               f"GFLOP/s 估算批大小 {batch} 的一步为 {predicted:.1f} 毫秒，实测 {measured:.1f} 毫秒（{ratio:.2f} 倍）。"})
