"""Inference and model-choice entries on ISLR Default: one row's latency in ONNX Runtime against eager PyTorch, and
whether a neural network beats gradient-boosted trees on a table."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from forgeml.playbook import Evidence, entry
from forgeml.playbook.common import bars, timed_ms, train

DATA = {"source": "bundled:default", "target": "default"}


def _p50_p95(fn, calls: int) -> tuple[float, float]:
    times = timed_ms(fn, calls, warmup=20)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


@entry(
    "onnx-latency", "inference",
    question={"en": "How do I make inference real-time on a CPU?",
              "zh": "怎样在 CPU 上做到实时推理？"},
    answer={"en": "Export the model with its preprocessing to ONNX and run it in ONNX Runtime (`forgeml export`, "
                  "`forgeml serve`): one graph, no Python between the steps. Measure one row's latency (p50 and p95), "
                  "not throughput on big batches; then shrink the model (int8, pruning, distillation: `forgeml "
                  "compress`) if it is still too slow, measuring the accuracy it costs.",
            "zh": "把模型连同预处理一起导出为 ONNX，用 ONNX Runtime 运行（`forgeml export`、`forgeml serve`）：一个计算图，"
                  "步骤之间没有 Python。要测单行的延迟（p50 和 p95），而不是大批量的吞吐；如果仍然太慢，再压缩模型"
                  "（int8、剪枝、蒸馏：`forgeml compress`），并测量它损失的准确率。"},
    claim={"en": "For one row of Default, the exported ONNX model (preprocessing included) answers faster at p50 than "
                 "the same MLP run eagerly in PyTorch on already-encoded inputs, both on one thread.",
           "zh": "对 Default 的单行数据，导出的 ONNX 模型（含预处理）的 p50 延迟低于同一个 MLP 在 PyTorch 中即时执行"
                 "（输入已编码好）的延迟，两者都用单线程。"},
    caveats={"en": "A small MLP on a 2-core CPU shared with other work; eager PyTorch is timed without its "
                   "preprocessing, which favours it. Latencies in milliseconds, from one run.",
             "zh": "一个小 MLP，在与其他任务共享的 2 核 CPU 上运行；PyTorch 的计时不含预处理，对它有利。"
                   "延迟单位为毫秒，来自一次运行。"},
)
def onnx_latency(fast: bool, out: Path) -> Evidence:
    import torch

    from forgeml import api
    from forgeml.export.onnx import feeds, session

    run = train(out, "latency", DATA, {"name": "mlp"}, train={"epochs": 2 if fast else 10, "threads": 1})
    api.export(run.run_dir)
    model = api.load(run.run_dir)
    row = api.test_rows(model).head(1)
    calls = 200 if fast else 2000
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        encoded = {k: torch.from_numpy(v) for k, v in model.preprocessor.transform(row).items()}
        with torch.no_grad():
            eager = _p50_p95(lambda: model.estimator(encoded), calls)
    finally:
        torch.set_num_threads(threads)
    sess = session(run.run_dir / "model.onnx", threads=1)
    feed = feeds(row, model.preprocessor)
    onnx = _p50_p95(lambda: sess.run(None, feed), calls)
    rows = [["PyTorch eager (encoded inputs)", round(eager[0], 4), round(eager[1], 4)],
            ["ONNX Runtime (raw inputs, preprocessing in the graph)", round(onnx[0], 4), round(onnx[1], 4)]]
    plot = bars(out / "onnx-latency.png", ["PyTorch eager", "ONNX Runtime"], [eager[0], onnx[0]],
                "p50 ms per row", f"Default, MLP, one row, one thread ({calls} calls)")
    return Evidence(
        ["runtime", "p50 ms", "p95 ms"], rows, onnx[0] < eager[0],
        {"en": f"One row: ONNX Runtime p50 {onnx[0]:.3f} ms (p95 {onnx[1]:.3f}) against eager PyTorch p50 "
               f"{eager[0]:.3f} ms (p95 {eager[1]:.3f}), {eager[0] / onnx[0]:.1f}x, over {calls} calls each.",
         "zh": f"单行：ONNX Runtime p50 {onnx[0]:.3f} 毫秒（p95 {onnx[1]:.3f}），PyTorch 即时执行 p50 {eager[0]:.3f} "
               f"毫秒（p95 {eager[1]:.3f}），相差 {eager[0] / onnx[0]:.1f} 倍，各调用 {calls} 次。"},
        [plot])


@entry(
    "deep-or-trees", "applications",
    question={"en": "Financial risk on a table: is a neural network better than gradient-boosted trees?",
              "zh": "表格上的金融风控：神经网络比梯度提升树更好吗？"},
    answer={"en": "Gradient-boosted trees (LightGBM) are the strong default on tables, and a network must beat them "
                  "on the same split to earn its place, but which wins depends on the table: a smooth boundary in a "
                  "few numeric columns can suit a network. Train both, keep the better on validation (`model: auto "
                  "--presets fast` does this), and report both. `model: auto` by default trains a bagged ensemble of "
                  "boosted trees (LightGBM, CatBoost, LightGBM-XT), which is shown beside them.",
            "zh": "梯度提升树（LightGBM）是表格数据上很强的默认选择，神经网络必须在同一个划分上胜过它才值得使用；"
                  "但谁赢取决于表格本身：几个数值列上的平滑边界可能更适合神经网络。两者都训练，按验证集保留更好的"
                  "那个（`model: auto --presets fast` 就是这样做的），并同时报告两者。`model: auto` 默认训练一个"
                  "装袋的提升树集成（LightGBM、CatBoost、LightGBM-XT），也列在旁边。"},
    claim={"en": "On Default (3 columns), LightGBM's test ROC-AUC is at least the MLP's minus 0.01.",
           "zh": "在 Default（3 列）上，LightGBM 的测试 ROC-AUC 不低于 MLP 的减去 0.01。"},
    caveats={"en": "One table, one split, default settings for both; a network can win on tables with many columns, "
                   "text or images.",
             "zh": "只有一个表格、一个划分，两者都用默认设置；在列很多、含文本或图像的表格上，神经网络可能会赢。"},
)
def deep_or_trees(fast: bool, out: Path) -> Evidence:
    epochs = {"epochs": 3 if fast else 30}
    runs = {name: train(out, f"risk-{name}", DATA, {"name": name}, train=epochs) for name in ("mlp", "lightgbm", "ensemble")}
    rows = [[name, round(r.metrics["val"]["roc_auc"], 4), round(r.metrics["test"]["roc_auc"], 4),
             round(r.metrics["test"]["pr_auc"], 4)] for name, r in runs.items()]
    mlp, trees, ens = rows[0][2], rows[1][2], rows[2][2]
    return Evidence(
        ["model", "val ROC-AUC", "test ROC-AUC", "test PR-AUC"], rows, trees >= mlp - 0.01,
        {"en": f"Test ROC-AUC: LightGBM {trees:.3f}, MLP {mlp:.3f}, the tree ensemble {ens:.3f}; test PR-AUC: "
               f"LightGBM {rows[1][3]:.3f}, MLP {rows[0][3]:.3f}, the ensemble {rows[2][3]:.3f}.",
         "zh": f"测试 ROC-AUC：LightGBM {trees:.3f}，MLP {mlp:.3f}，树集成 {ens:.3f}；测试 PR-AUC：LightGBM "
               f"{rows[1][3]:.3f}，MLP {rows[0][3]:.3f}，集成 {rows[2][3]:.3f}。"})
