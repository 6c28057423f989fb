"""From scratch: a convolutional network's forward and backward passes in NumPy (im2col convolutions, ReLU, 2x2
max-pooling, a softmax head), checked against torch's autograd, then trained with SGD + momentum on the digits beside
the same network in torch and forgeml's own CNN."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from forgeml.playbook import Evidence, entry
from forgeml.playbook.common import train

DIGITS = {"source": "bundled:digits", "split": {"val": 0.1, "test": 0.2, "seed": 0}}  # 1,257 / 180 / 360 images
CHANNELS = (16, 32)  # conv 3x3 (1 -> 16) - ReLU - pool: 4x4; conv 3x3 (16 -> 32) - ReLU - pool: 2x2; dense 128 -> 10
LR, MOMENTUM, BATCH = 0.05, 0.9, 32
NAMES = ("conv1.W", "conv1.b", "conv2.W", "conv2.b", "dense.W", "dense.b")


def init(seed: int = 0) -> dict:
    """He-normal weights, small random biases (non-zero, so pooling windows of equal values occur and are checked)."""
    rng = np.random.default_rng(seed)
    (c1, c2), shapes = CHANNELS, {"conv1.W": (CHANNELS[0], 1, 3, 3), "conv2.W": (CHANNELS[1], CHANNELS[0], 3, 3),
                                  "dense.W": (CHANNELS[1] * 4, 10)}
    params = {k: rng.normal(0, np.sqrt(2 / np.prod(s[1:] if k != "dense.W" else s[:1])), s) for k, s in shapes.items()}
    params.update({"conv1.b": rng.normal(0, 0.1, c1), "conv2.b": rng.normal(0, 0.1, c2), "dense.b": np.zeros(10)})
    return {k: params[k] for k in NAMES}


def im2col(x: np.ndarray, k: int = 3) -> np.ndarray:
    """x [n, c, h, w] -> every k x k patch (zero 'same' padding, stride 1) as a row: [n, h, w, c*k*k]."""
    n, c, h, w = x.shape
    p = k // 2
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))), (k, k), axis=(2, 3))
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n, h, w, c * k * k)  # [n, h, w, c, k, k] flattened


def col2im(dcols: np.ndarray, c: int, k: int = 3) -> np.ndarray:
    """The adjoint of im2col: each patch's gradient added back onto the pixels it was read from."""
    n, h, w, _ = dcols.shape
    p = k // 2
    d = dcols.reshape(n, h, w, c, k, k)
    dx = np.zeros((n, c, h + 2 * p, w + 2 * p))
    for i in range(k):
        for j in range(k):
            dx[:, :, i:i + h, j:j + w] += d[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dx[:, :, p:p + h, p:p + w]


def conv(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3x3 'same' convolution (cross-correlation, as torch): (output [n, c_out, h, w], the im2col matrix)."""
    cols = im2col(x)
    return (cols @ W.reshape(len(W), -1).T + b).transpose(0, 3, 1, 2), cols


def conv_backward(dout: np.ndarray, cols: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d input, d W, d b) of conv from d output [n, c_out, h, w]."""
    d = dout.transpose(0, 2, 3, 1)  # [n, h, w, c_out]
    dW = (d.reshape(-1, len(W)).T @ cols.reshape(-1, cols.shape[-1])).reshape(W.shape)
    return col2im(d @ W.reshape(len(W), -1), W.shape[1]), dW, d.sum(axis=(0, 1, 2))


def pool(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 max-pooling, stride 2: (output, the index 0-3 of each window's maximum; the first one on ties, as torch)."""
    n, c, h, w = x.shape
    windows = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    arg = windows.argmax(axis=-1)
    return np.take_along_axis(windows, arg[..., None], -1)[..., 0], arg


def pool_backward(dout: np.ndarray, arg: np.ndarray) -> np.ndarray:
    """The gradient goes to each window's maximum only."""
    n, c, h, w = dout.shape
    d = (np.arange(4) == arg[..., None]) * dout[..., None]  # [n, c, h, w, 4]
    return d.reshape(n, c, h, w, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, 2 * h, 2 * w)


def forward(params: dict, x: np.ndarray) -> tuple[np.ndarray, list]:
    """x [n, 1, 8, 8] -> (logits [n, 10], what the backward pass needs)."""
    z1, cols1 = conv(x, params["conv1.W"], params["conv1.b"])
    a1, arg1 = pool(np.maximum(z1, 0))
    z2, cols2 = conv(a1, params["conv2.W"], params["conv2.b"])
    a2, arg2 = pool(np.maximum(z2, 0))
    flat = a2.reshape(len(x), -1)
    return flat @ params["dense.W"] + params["dense.b"], [cols1, z1, arg1, cols2, z2, arg2, flat]


def forward_backward(params: dict, x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
    """Mean cross-entropy and its gradient for every parameter, by hand."""
    logits, (cols1, z1, arg1, cols2, z2, arg2, flat) = forward(params, x)
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    n = len(x)
    loss = float(-np.log(p[np.arange(n), y]).mean())
    dlogits = p
    dlogits[np.arange(n), y] -= 1
    dlogits /= n
    g = {"dense.W": flat.T @ dlogits, "dense.b": dlogits.sum(axis=0)}
    da2 = (dlogits @ params["dense.W"].T).reshape(n, CHANNELS[1], 2, 2)
    dz2 = pool_backward(da2, arg2) * (z2 > 0)  # ReLU passes the gradient where its input was positive
    da1, g["conv2.W"], g["conv2.b"] = conv_backward(dz2, cols2, params["conv2.W"])
    dz1 = pool_backward(da1, arg1) * (z1 > 0)
    _, g["conv1.W"], g["conv1.b"] = conv_backward(dz1, cols1, params["conv1.W"])
    return loss, g


def torch_forward(t: dict, x):
    """The same network with torch's operations (t: name -> tensor)."""
    import torch.nn.functional as F

    a = F.max_pool2d(F.relu(F.conv2d(x, t["conv1.W"], t["conv1.b"], padding=1)), 2)
    a = F.max_pool2d(F.relu(F.conv2d(a, t["conv2.W"], t["conv2.b"], padding=1)), 2)
    return a.flatten(1) @ t["dense.W"] + t["dense.b"]


def autograd(params: dict, x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
    """The loss and gradients from torch's autograd, float64, on the same weights and batch."""
    import torch

    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    loss = torch.nn.functional.cross_entropy(torch_forward(t, torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    return float(loss.detach()), {k: v.grad.numpy() for k, v in t.items()}


def batches(n: int, epochs: int, seed: int = 0) -> list[list[np.ndarray]]:
    """The mini-batches of every epoch (a fresh shuffle each), shared by the NumPy and the torch training."""
    rng = np.random.default_rng(seed)
    return [np.array_split(order, int(np.ceil(n / BATCH))) for order in (rng.permutation(n) for _ in range(epochs))]


def train_numpy(params: dict, x: np.ndarray, y: np.ndarray, plan: list) -> tuple[dict, list[float]]:
    """SGD with momentum (v = momentum v + g; w -= lr v, torch.optim.SGD's rule); the mean loss of each epoch."""
    params = {k: v.copy() for k, v in params.items()}
    velocity = {k: np.zeros_like(v) for k, v in params.items()}
    losses = []
    for epoch in plan:
        total = 0.0
        for idx in epoch:
            loss, g = forward_backward(params, x[idx], y[idx])
            total += loss * len(idx)
            for k in params:
                velocity[k] = MOMENTUM * velocity[k] + g[k]
                params[k] -= LR * velocity[k]
        losses.append(total / len(x))
    return params, losses


def train_torch(params: dict, x: np.ndarray, y: np.ndarray, plan: list) -> tuple[dict, list[float]]:
    """The same training in torch: autograd, torch.optim.SGD, float64, the same start and batches."""
    import torch

    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    opt = torch.optim.SGD(list(t.values()), lr=LR, momentum=MOMENTUM)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    losses = []
    for epoch in plan:
        total = 0.0
        for idx in epoch:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(torch_forward(t, xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(x))
    return {k: v.detach().numpy() for k, v in t.items()}, losses


def digits_split() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """bundled:digits split as forgeml splits it (DIGITS: stratified, seed 0): images [n, 1, 8, 8] in 0-1, labels."""
    from sklearn.datasets import load_digits

    from forgeml.config import SplitConfig
    from forgeml.data.split import split_indices

    d = load_digits()
    idx = split_indices(d.target, True, SplitConfig(**DIGITS["split"]))
    return {s: (d.images[i][:, None] / 16.0, d.target[i].astype(np.int64)) for s, i in zip(("train", "val", "test"), idx)}


def accuracy(params: dict, x: np.ndarray, y: np.ndarray) -> float:
    return float((forward(params, x)[0].argmax(axis=1) == y).mean())


def _curves(path: Path, curves: dict[str, list[float]]) -> str:
    """Training loss per epoch, one line per model; returns the file name."""
    from forgeml.evaluate.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for (label, losses), style in zip(curves.items(), ("-o", "--x", ":s")):
        ax.plot(range(1, len(losses) + 1), losses, style, label=label, markersize=4)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (cross-entropy)")
    ax.set_yscale("log")
    ax.set_title("NumPy CNN vs the same CNN in torch (and forgeml's cnn)", fontsize=10)
    ax.legend(fontsize=8)
    save_figure(fig, Path(path))
    return Path(path).name


def _sci(value) -> str:
    return f"{float(value):.1e}"


@entry(
    "cnn-from-scratch", "from-scratch",
    question={"en": "Write a CNN image classifier from scratch in NumPy: convolution, pooling, forward and backward.",
              "zh": "用 NumPy 从零写一个 CNN 图像分类器：卷积、池化、前向和反向传播。"},
    answer={"en": "Turn the convolution into a matrix product: im2col copies every 3x3 patch (zero-padded) into a row, "
                  "so the layer is cols @ W^T + b; its backward pass is dW = dout^T cols, db = the sum of dout, and "
                  "d cols = dout W, which col2im adds back onto the pixels each patch was read from (a pixel sits in "
                  "up to nine patches). ReLU passes the gradient where its input was positive; 2x2 max-pooling sends "
                  "each window's gradient to its maximum only (remember which one, and break ties as your reference "
                  "does); the softmax head is the MLP's: (softmax - onehot)/n. Check every gradient against autograd "
                  "on the same weights and batch in float64 before training, then train with SGD + momentum; in "
                  "float64, from the same start on the same batches, a correct NumPy network follows torch's "
                  "trajectory to rounding error.",
            "zh": "把卷积变成矩阵乘法：im2col 把每个 3x3 小块（补零后）复制成一行，于是这一层就是 cols @ W^T + b；反向时 "
                  "dW = dout^T cols，db = dout 之和，d cols = dout W，再由 col2im 把每个小块的梯度加回它读取的像素上"
                  "（一个像素最多属于九个小块）。ReLU 只在输入为正的位置传回梯度；2x2 最大池化只把每个窗口的梯度传给最大值"
                  "那个位置（要记住是哪个，并像参考实现那样处理并列）；softmax 输出层与 MLP 相同：(softmax - onehot)/n。"
                  "训练之前先在 float64 下用相同的权重和批次把每个梯度与自动求导对比，再用带动量的 SGD 训练；在 float64 下"
                  "从同一起点、用同样的批次训练，正确的 NumPy 网络会沿着 torch 的轨迹走，差别只有舍入误差。"},
    claim={"en": "On the digits (forgeml's split of bundled:digits, 360 test images), every gradient of a two-layer "
                 "NumPy CNN equals torch autograd's within 1e-6 in float64, at initialization and after training; "
                 "trained with SGD + momentum, its test accuracy is within 2 points of the same CNN in torch trained "
                 "from the same start on the same batches, and within 3 points of forgeml's own cnn trained as many "
                 "epochs.",
           "zh": "在 digits 上（forgeml 对 bundled:digits 的划分，360 张测试图像），两层卷积的 NumPy CNN 的每个梯度在 float64 "
                 "下与 torch 自动求导相差不超过 1e-6（初始化时和训练后都如此）；用带动量的 SGD 训练后，它的测试准确率与"
                 "从同一起点、用同样批次训练的 torch 版同一网络相差不超过 2 个百分点，与训练同样多 epoch 的 forgeml 自带 "
                 "cnn 相差不超过 3 个百分点。"},
    caveats={"en": "A tiny network (conv 16 and 32 channels, 3x3, 'same' padding, stride 1, 2x2 max-pooling; 6,090 "
                   "parameters) on 8x8 grayscale digits, float64 on a 2-core CPU; no batch normalization, dropout or "
                   "augmentation. forgeml's cnn is a different, larger network (residual blocks with batch "
                   "normalization, AdamW, early stopping on validation loss), so its row compares recipes, not "
                   "implementations. --fast trains 2 epochs, otherwise 20. im2col copies each input nine times: fine "
                   "here, too much memory for large images (libraries use tiled or FFT/Winograd kernels).",
             "zh": "网络很小（卷积 16 和 32 个通道，3x3，same 补零，步长 1，2x2 最大池化；共 6,090 个参数），数据是 8x8 灰度"
                   "手写数字，在 2 核 CPU 上用 float64；没有批归一化、dropout 或数据增强。forgeml 的 cnn 是另一个更大的网络"
                   "（带批归一化的残差块、AdamW、按验证损失早停），所以它那一行比较的是训练方案，不是实现。--fast 训练 2 个 "
                   "epoch，否则 20 个。im2col 把每个输入复制九次：这里没问题，大图像会占用太多内存（库里用分块或 "
                   "FFT/Winograd 卷积核）。"},
)
def cnn_from_scratch(fast: bool, out: Path) -> Evidence:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core machine: one thread is much faster there
    try:
        return _experiment(fast, out)
    finally:
        torch.set_num_threads(threads)


def _experiment(fast: bool, out: Path) -> Evidence:
    import time

    epochs = 2 if fast else 20
    split = digits_split()
    (x_tr, y_tr), (x_te, y_te) = split["train"], split["test"]
    start = init(seed=0)
    rows = []
    loss, ours = forward_backward(start, x_tr[:64], y_tr[:64])
    ref_loss, ref = autograd(start, x_tr[:64], y_tr[:64])
    initial = {k: float(np.abs(ours[k] - ref[k]).max()) for k in NAMES}
    for k in NAMES:
        rows.append([f"d loss / d {k} {tuple(start[k].shape)}", "max |NumPy - autograd|, initial weights, 64 images",
                     _sci(initial[k]), "–"])
    rows.append(["loss", "|NumPy - autograd|, initial weights, 64 images", _sci(abs(loss - ref_loss)), "–"])
    plan = batches(len(x_tr), epochs)
    clock = time.perf_counter()
    mine, mine_losses = train_numpy(start, x_tr, y_tr, plan)
    mine_s = time.perf_counter() - clock
    clock = time.perf_counter()
    theirs, torch_losses = train_torch(start, x_tr, y_tr, plan)
    torch_s = time.perf_counter() - clock
    _, ours = forward_backward(mine, x_te, y_te)
    _, ref = autograd(mine, x_te, y_te)
    trained_diff = max(float(np.abs(ours[k] - ref[k]).max()) for k in NAMES)
    rows.append(["every gradient after training", "max |NumPy - autograd|, trained weights, 360 test images",
                 _sci(trained_diff), "–"])
    acc_np, acc_torch = accuracy(mine, x_te, y_te), accuracy(theirs, x_te, y_te)
    drift = max(float(np.abs(mine[k] - theirs[k]).max()) for k in NAMES)
    run = train(out, "cnn-forgeml", DIGITS, {"name": "cnn"}, train={"epochs": epochs, "threads": 1})
    acc_fm = round(float(run.metrics["test"]["accuracy"]), 4)
    rows += [[f"NumPy CNN, SGD + momentum, {epochs} epochs", "test accuracy", round(acc_np, 4), round(mine_s, 1)],
             ["the same CNN in torch, same start and batches", "test accuracy", round(acc_torch, 4), round(torch_s, 1)],
             ["NumPy vs torch weights after training", "max |difference|", _sci(drift), "–"],
             [f"forgeml cnn (residual, AdamW), {epochs} epochs", "test accuracy", acc_fm,
              round(float(run.metrics["training"]["seconds"]), 1)]]
    worst = max(*initial.values(), trained_diff)
    supported = bool(worst <= 1e-6 and abs(acc_np - acc_torch) <= 0.02 and abs(acc_np - acc_fm) <= 0.03)
    fm_losses = [h["train_loss"] for h in run.metrics["history"]]
    plots = [_curves(out / "cnn-from-scratch.png", {"NumPy": mine_losses, "torch (same start, batches)": torch_losses,
                                                     "forgeml cnn": fm_losses})]
    return Evidence(
        ["check or model", "measure", "value", "training seconds"], rows, supported,
        {"en": f"The largest gradient difference from autograd is {worst:.1e} (float64 rounding). Trained {epochs} "
               f"epochs from the same start on the same batches, the NumPy CNN and its torch copy end at most "
               f"{drift:.1e} apart in every weight and reach {acc_np:.4f} and {acc_torch:.4f} test accuracy "
               f"({mine_s:.1f} s and {torch_s:.1f} s); forgeml's residual cnn reaches {acc_fm:.4f} "
               f"({100 * (acc_fm - acc_np):+.1f} points).",
         "zh": f"与自动求导相比，梯度最大差异为 {worst:.1e}（float64 舍入误差）。从同一起点、用同样批次训练 {epochs} 个 "
               f"epoch 后，NumPy CNN 与 torch 版的权重最多相差 {drift:.1e}，测试准确率分别为 {acc_np:.4f} 和 "
               f"{acc_torch:.4f}（用时 {mine_s:.1f} 秒和 {torch_s:.1f} 秒）；forgeml 的残差 cnn 为 {acc_fm:.4f}"
               f"（相差 {100 * (acc_fm - acc_np):+.1f} 个百分点）。"},
        plots)
