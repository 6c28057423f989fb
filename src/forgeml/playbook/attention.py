"""From scratch: multi-head self-attention (the transformer's core) in NumPy, checked against torch's
nn.MultiheadAttention with the same weights, with and without a causal mask, on digits read as sequences of rows."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from forgeml.playbook import Evidence, entry

HEADS = 2


def self_attention(x: np.ndarray, w: dict, heads: int, causal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """x [batch, T, D] -> (outputs [batch, T, D], attention weights [batch, T, T] averaged over heads).
    Per head h: softmax(Q_h K_h^T / sqrt(d) [+ mask]) V_h, with Q, K, V = x W^T + b; heads concatenated, then W_o."""
    b, t, dim = x.shape
    d = dim // heads

    def split(m):  # [b, T, D] -> [b, heads, T, d]
        return m.reshape(b, t, heads, d).transpose(0, 2, 1, 3)

    q, k, v = (split(x @ w[f"W{n}"].T + w[f"b{n}"]) for n in "qkv")
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d)
    if causal:  # position i sees positions <= i only
        scores = np.where(np.triu(np.ones((t, t), dtype=bool), 1), -np.inf, scores)
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=-1, keepdims=True)
    heads_out = (weights @ v).transpose(0, 2, 1, 3).reshape(b, t, dim)
    return heads_out @ w["Wo"].T + w["bo"], weights.mean(axis=1)


def torch_attention(x: np.ndarray, w: dict, heads: int, causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """The same computation by torch.nn.MultiheadAttention (float64), its weights set to ``w``."""
    import torch

    dim = x.shape[-1]
    mha = torch.nn.MultiheadAttention(dim, heads, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.from_numpy(np.concatenate([w["Wq"], w["Wk"], w["Wv"]])))
        mha.in_proj_bias.copy_(torch.from_numpy(np.concatenate([w["bq"], w["bk"], w["bv"]])))
        mha.out_proj.weight.copy_(torch.from_numpy(w["Wo"]))
        mha.out_proj.bias.copy_(torch.from_numpy(w["bo"]))
        t = x.shape[1]
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1) if causal else None
        xt = torch.from_numpy(x)
        out, weights = mha(xt, xt, xt, attn_mask=mask, need_weights=True, average_attn_weights=True)
    return out.numpy(), weights.numpy()


def _sci(value) -> str:
    return f"{float(value):.1e}"


@entry(
    "attention-from-scratch", "from-scratch",
    question={"en": "Write the self-attention of a transformer from scratch. Does it compute what PyTorch's does?",
              "zh": "从零写出 Transformer 的自注意力。它和 PyTorch 的计算结果一样吗？"},
    answer={"en": "Project each position's vector to a query, a key and a value (x W^T + b); split them into heads; per "
                  "head, score every pair of positions by the dot product of query and key divided by sqrt(head size), "
                  "softmax each row of scores into weights, and take the weighted sum of the values; concatenate the "
                  "heads and project once more. A causal mask (for generating text left to right) sets the scores of "
                  "later positions to minus infinity before the softmax, so a position never sees the future. "
                  "Subtract each row's maximum before exponentiating, or long sequences overflow.",
            "zh": "把每个位置的向量投影成查询、键和值（x W^T + b）；拆成多个头；每个头里，用查询和键的点积除以 sqrt(头的维度) "
                  "给每对位置打分，对每一行分数做 softmax 得到权重，再对值加权求和；把各个头拼接起来再投影一次。因果掩码"
                  "（从左到右生成文本时用）在 softmax 之前把后面位置的分数设为负无穷，所以一个位置永远看不到未来。取指数之前"
                  "先减去每行的最大值，否则长序列会溢出。"},
    claim={"en": "On digits read as sequences of 8 rows of 8 pixels, a NumPy multi-head self-attention (2 heads) matches "
                 "torch.nn.MultiheadAttention with the same weights to within 1e-10 in float64, with and without a "
                 "causal mask, and with the mask, changing later rows leaves every earlier output unchanged.",
           "zh": "把 digits 图像看作 8 行、每行 8 个像素的序列，用 NumPy 写的多头自注意力（2 个头）与权重相同的 "
                 "torch.nn.MultiheadAttention 在 float64 下相差不超过 1e-10，无论有没有因果掩码；有掩码时，改变后面的行不会"
                 "改变任何前面位置的输出。"},
    caveats={"en": "Forward pass only (the backward pass is what numpy-backprop checks for an MLP), random weights, no "
                   "dropout, no positional encoding, float64. A whole transformer adds positional information, "
                   "layer normalization and a feed-forward block around this (forgeml's `model: {name: text, "
                   "encoder: transformer}` uses torch's).",
             "zh": "只有前向计算（反向传播由 numpy-backprop 条目针对 MLP 检查），随机权重，没有 dropout，没有位置编码，"
                   "float64。完整的 Transformer 还在它周围加上位置信息、层归一化和前馈块（forgeml 的 `model: {name: text, "
                   "encoder: transformer}` 用的是 torch 的实现）。"},
)
def attention_from_scratch(fast: bool, out: Path) -> Evidence:
    from sklearn.datasets import load_digits

    images = load_digits().images / 16.0
    x = images[:64] if fast else images  # [n, 8 rows, 8 pixels]
    dim = x.shape[-1]
    rng = np.random.default_rng(0)
    w = {f"W{n}": rng.normal(0, dim ** -0.5, (dim, dim)) for n in "qkvo"}
    w.update({f"b{n}": rng.normal(0, 0.1, dim) for n in "qkvo"})
    rows = []
    for causal in (False, True):
        mine, mine_w = self_attention(x, w, HEADS, causal)
        ref, ref_w = torch_attention(x, w, HEADS, causal)
        rows.append(["causal mask" if causal else "no mask", len(x), _sci(np.abs(mine - ref).max()),
                     _sci(np.abs(mine_w - ref_w).max()), _sci(np.abs(mine_w.sum(axis=-1) - 1).max())])
    later = x.copy()
    later[:, 4:] = rng.random(later[:, 4:].shape)  # new rows 5-8; rows 1-4 as they were
    before, after = self_attention(x, w, HEADS, True)[0], self_attention(later, w, HEADS, True)[0]
    leak = float(np.abs(before[:, :4] - after[:, :4]).max())
    moved = float(np.abs(before[:, 4:] - after[:, 4:]).max())
    rows.append(["causal: rows 5-8 changed", len(x), _sci(leak), _sci(moved), "–"])
    worst = max(float(r[c]) for r in rows[:2] for c in (2, 3))
    supported = bool(worst <= 1e-10 and leak == 0.0 and moved > 0)
    return Evidence(
        ["case", "sequences", "max |output diff|", "max |weight diff| (rows 5-8 changed: max output change there)",
         "max |row sum of weights - 1|"], rows, supported,
        {"en": f"Against torch.nn.MultiheadAttention on {len(x)} digits: max output difference {rows[0][2]} without "
               f"a mask and {rows[1][2]} with the causal mask; attention weights differ by at most "
               f"{max(rows[:2], key=lambda r: float(r[3]))[3]}. Changing rows 5-8 moved the outputs of rows 1-4 by {leak:.1e} and "
               f"those of rows 5-8 by up to {moved:.3f}.",
         "zh": f"在 {len(x)} 张 digits 图像上与 torch.nn.MultiheadAttention 比较：无掩码时输出最大差 {rows[0][2]}，"
               f"有因果掩码时 {rows[1][2]}；注意力权重最大差 {max(rows[:2], key=lambda r: float(r[3]))[3]}。改变第 5-8 行后，第 1-4 "
               f"行的输出变化 {leak:.1e}，第 5-8 行的输出最多变化 {moved:.3f}。"})
