"""The data-parallel entry: the digits MLP trained in one process and in two (forgeml train --nproc 2, DDP over
gloo), same global batch: is it the same model, and is it faster on this machine?"""
from __future__ import annotations

import json
from pathlib import Path

from forgeml.playbook import Evidence, entry
from forgeml.playbook.common import train
from forgeml.playbook.speed import digits

SAME = 1e-4  # the largest relative difference in any epoch's validation loss that still counts as the same training


def _launch_two(out: Path, name: str, data: dict, settings: dict) -> dict:
    """``forgeml train --nproc 2`` on the same config as ``train``; returns the run's metrics.json."""
    from forgeml.errors import RunError
    from forgeml.train.launch import launch

    config = {"name": name, "runs_dir": str(Path(out) / "runs"), "data": data, "task": "classification",
              "model": {"name": "mlp", "dropout": 0.0}, "tracking": {"uri": "none"}, "train": settings}
    code = launch(2, config, ["--quiet", "--overwrite"], silent=True)
    if code:
        raise RunError(f"the two-process run failed (exit {code})")
    return json.loads((Path(out) / "runs" / name / "metrics.json").read_text())


@entry(
    "data-parallel", "training",
    question={"en": "Will training in several processes (data-parallel, DDP) make it faster, and does it change the model?",
              "zh": "用多个进程做数据并行训练（DDP）会更快吗？会改变训练出的模型吗？"},
    answer={"en": "Data parallelism gives each worker a share of every batch and averages their gradients before each "
                  "step, so with the same global batch (and learning rate) N workers take the step one worker would "
                  "take on the whole batch: the model is the same, up to float rounding (without dropout, whose "
                  "masks differ per worker). It pays when each worker has hardware of its own (a GPU, or cores that "
                  "would otherwise idle) and a step's compute outweighs the all-reduce of every gradient it adds. On "
                  "a small CPU, two processes share the cores one process already uses through its threads and add "
                  "that communication, so expect little or nothing; larger batches (fewer all-reduces per row) and "
                  "larger models help. To fit a model that does not fit one device, shard it (FSDP) instead.",
            "zh": "数据并行让每个进程处理每个批次的一部分，并在每一步之前把各进程的梯度取平均；所以在全局批大小（和学习率）"
                  "相同时，N 个进程迈出的一步与单个进程处理整个批次的一步相同：训练出的模型相同，只差浮点舍入（不能有 "
                  "dropout，因为每个进程的掩码不同）。它在每个进程都有自己的硬件（一块 GPU，或原本空闲的核）、且一步的计算"
                  "量大于它额外带来的全部梯度 all-reduce 通信时才划算。在小 CPU 上，两个进程分享的正是单个进程已经用线程"
                  "占用的那些核，还多了通信，所以别指望提速；更大的批（每行分摊的 all-reduce 更少）和更大的模型会好一些。"
                  "如果是模型在一个设备上放不下，应该用分片（FSDP）。"},
    claim={"en": f"On the digits MLP, two gloo processes with the same global batch train the same model as one process "
                 f"(every epoch's validation loss within {SAME:g} relative), and on this 2-core CPU they give less than "
                 f"twice one process's samples per second.",
           "zh": f"在手写数字 MLP 上，全局批大小相同时，两个 gloo 进程训练出的模型与单个进程相同（每个 epoch 的验证损失相对差"
                 f"不超过 {SAME:g}）；在这台 2 核 CPU 上，它们每秒处理的样本数不到单个进程的两倍。"},
    caveats={"en": "One small data set (1,257 training digits as 64 pixel columns), forgeml's MLP (256-128) without "
                   "dropout, batch 64, one seed, a 2-core CPU that may be shared with other work, so the seconds are "
                   "noisy. Samples per second count the loop's training passes (rank 0's clock), not start-up: each "
                   "extra process also imports torch and reads the data, a few seconds that matter on runs this "
                   "short. One process is timed with one torch thread (forgeml's choice for a network this small) "
                   "and with two. A GPU machine or several machines change the answer; forgeml runs the same config "
                   "there (docs/data-parallel.md).",
             "zh": "只有一个小数据集（1,257 个训练数字，64 个像素列），forgeml 的 MLP（256-128），不用 dropout，批大小 64，一个"
                   "种子，2 核 CPU 可能与其他任务共享，所以秒数有噪声。每秒样本数只计训练循环（0 号进程的时钟），不计启动："
                   "每多一个进程就要多导入一次 torch、多读一次数据，对这么短的训练来说要几秒钟。单进程分别用一个 torch "
                   "线程（forgeml 对这么小的网络的选择）和两个线程计时。换成 GPU 机器或多台机器，结论会不同；forgeml 在那里"
                   "运行同一份配置（docs/data-parallel.md）。"},
)
def data_parallel(fast: bool, out: Path) -> Evidence:
    data, epochs = digits(out), 3 if fast else 10
    settings = {"epochs": epochs, "batch_size": 64, "early_stopping": None}
    runs = {}
    for label, name, threads in (("1 process, 1 thread", "dp-1x1", 1), ("1 process, 2 threads", "dp-1x2", 2)):
        runs[label] = train(out, name, data, {"name": "mlp", "dropout": 0.0}, task="classification",
                            train={**settings, "threads": threads}).metrics
    runs["2 processes, 1 thread each"] = _launch_two(out, "dp-2x1", data, settings)
    n = json.loads((Path(out) / "runs" / "dp-1x1" / "manifest.json").read_text())["data"]["rows"]["train"]
    one = runs["1 process, 1 thread"]
    rate = {label: n * len(m["history"]) / m["training"]["seconds"] for label, m in runs.items()}
    rows, gaps = [], {}
    for label, m in runs.items():
        gaps[label] = max(abs(a["val_loss"] - b["val_loss"]) / abs(b["val_loss"])
                          for a, b in zip(m["history"], one["history"]))
        rows.append([label, round(m["training"]["seconds"], 3), round(rate[label]), round(rate[label] / rate["1 process, 1 thread"], 2),
                     round(m["history"][-1]["val_loss"], 5), f"{gaps[label]:.1e}", round(m["test"]["accuracy"], 4)])
    two = "2 processes, 1 thread each"
    ratio = rate[two] / rate["1 process, 1 thread"]
    supported = gaps[two] <= SAME and ratio < 2
    return Evidence(
        ["setup", "training seconds", "samples / s", "vs 1 process, 1 thread", "last val loss",
         "largest relative val-loss gap to 1 process", "test accuracy"],
        rows, bool(supported),
        {"en": f"Two processes trained the same model: the largest relative gap in any epoch's validation loss was "
               f"{gaps[two]:.1e}, and the test accuracy {runs[two]['test']['accuracy']:.4f} against "
               f"{one['test']['accuracy']:.4f}. They trained at {ratio:.2f}x one single-threaded process's samples per "
               f"second ({rate[two]:,.0f} against {rate['1 process, 1 thread']:,.0f}); one process on two threads ran "
               f"at {rate['1 process, 2 threads'] / rate['1 process, 1 thread']:.2f}x.",
         "zh": f"两个进程训练出的模型相同：各 epoch 验证损失的最大相对差为 {gaps[two]:.1e}，测试准确率 "
               f"{runs[two]['test']['accuracy']:.4f}，单进程为 {one['test']['accuracy']:.4f}。它们每秒处理的样本数是单线程单进程的 "
               f"{ratio:.2f} 倍（{rate[two]:,.0f} 对 {rate['1 process, 1 thread']:,.0f}）；单进程用两个线程时是 "
               f"{rate['1 process, 2 threads'] / rate['1 process, 1 thread']:.2f} 倍。"},
    )
