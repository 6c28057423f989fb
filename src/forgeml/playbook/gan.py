"""The GAN from-scratch entry: the seeds' generator, whose upsampling stack cannot reach the size it asserts, beside
forgeml's, which plans its stack from the data's shape; then forgeml's GAN trained on the digits."""
from __future__ import annotations

from pathlib import Path

from forgeml.playbook import Evidence, entry
from forgeml.playbook.common import train

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 128, 128), (1, 13, 13), (3, 12, 10)]  # (channels, height, width)


def seeds_generator(latent: int = 16):
    """The seeds' DCGAN generator: a 7x7 grid doubled twice by transposed convolutions (7 -> 14 -> 28)."""
    from torch import nn

    return nn.Sequential(nn.Linear(latent, 64 * 7 * 7), nn.Unflatten(1, (64, 7, 7)),
                         nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Tanh())


@entry(
    "gan-from-scratch", "from-scratch",
    question={"en": "Write a GAN that generates images. Why does my generator's output not have the size I asserted?",
              "zh": "写一个生成图像的 GAN。为什么生成器输出的尺寸和我断言的不一样？"},
    answer={"en": "A generator's output size is fixed by its architecture, not by what you assert: a DCGAN generator "
                  "starts from a small grid and each stride-2 upsampling doubles it, so a 7x7 start doubled twice gives "
                  "28x28, never 128x128. Plan the stack from the data instead: find how many times the image's sides "
                  "halve evenly, start from that base grid and double that many times, and check the output against "
                  "the data's shape in a test. Then train the two networks in turns (the discriminator on real and "
                  "generated images, then the generator against the discriminator just updated), with Adam's beta1 "
                  "at 0.5 and a small learning rate as DCGAN does, and measure the samples against real images "
                  "(a Frechet distance in some classifier's features), not by the losses, which oscillate.",
            "zh": "生成器输出多大由结构决定，而不是由断言决定：DCGAN 生成器从一个小网格开始，每个步长为 2 的上采样把它放大"
                  "一倍，所以从 7x7 放大两次得到 28x28，永远得不到 128x128。应该根据数据来规划这个结构：看图像的边长能被 2 "
                  "整除几次，从对应的基础网格开始放大同样的次数，并在测试里检查输出与数据形状一致。然后轮流训练两个网络"
                  "（判别器看真实图像和生成图像，再让生成器对抗刚更新过的判别器），像 DCGAN 一样把 Adam 的 beta1 设为 0.5、"
                  "学习率取小；用生成样本与真实图像的距离（在某个分类器特征空间里的 Frechet 距离）来衡量，而不是看来回"
                  "振荡的损失。"},
    claim={"en": "The seeds' 7 -> 14 -> 28 stack gives 28x28 where it asserts 128x128; forgeml's generator gives each "
                 "data shape it is built for (8x8, 28x28, 128x128, 13x13, 12x10); trained on the digits, its "
                 "validation Frechet distance falls below half of its first epoch's.",
           "zh": "种子代码的 7 -> 14 -> 28 结构断言输出 128x128，实际得到 28x28；forgeml 的生成器对每种数据形状（8x8、28x28、"
                 "128x128、13x13、12x10）都输出该形状；在手写数字上训练后，它的验证 Frechet 距离降到第一个 epoch 的一半"
                 "以下。"},
    caveats={"en": "The Frechet distance is computed in the features of a small classifier forgeml trains on the same "
                   "digits, not Inception FID (no weights are downloaded), so it compares runs on this data only. One "
                   "seed, 8x8 digits, few epochs on a 2-core CPU (5 with --fast, 60 otherwise; the benchmark in "
                   "docs/generation.md trains 300 and compares with a Gaussian mixture). A GAN's score moves from "
                   "epoch to epoch; forgeml keeps the best validation epoch.",
             "zh": "Frechet 距离是在 forgeml 用同一批数字训练的小分类器的特征里算的，不是 Inception FID（不下载任何权重），"
                   "所以只能在这份数据上比较不同运行。一个种子，8x8 的数字，在 2 核 CPU 上只训练几个 epoch（--fast 为 5，"
                   "否则 60；docs/generation.md 里的基准测试训练 300 个 epoch，并与高斯混合模型比较）。GAN 的分数每个 "
                   "epoch 都会波动；forgeml 保留验证集上最好的那个 epoch。"},
)
def gan_from_scratch(fast: bool, out: Path) -> Evidence:
    import torch

    from forgeml.models.gan import Generator

    rows = []
    seeds_out = tuple(seeds_generator()(torch.randn(2, 16)).shape[1:])
    rows.append(["the seeds' generator (7 -> 14 -> 28), asserted (1, 128, 128)", str((1, 128, 128)), str(seeds_out),
                 seeds_out == (1, 128, 128)])
    matches = []
    for shape in SHAPES:
        got = tuple(Generator(16, 0, list(shape), 8)(torch.randn(2, 16)).shape[1:])
        matches.append(got == shape)
        rows.append([f"forgeml's generator for {shape[1]}x{shape[2]} images", str(shape), str(got), got == shape])
    run = train(out, "gan-digits", {"source": "bundled:digits"}, {"name": "gan"}, task={"name": "generation"},
                train={"epochs": 5 if fast else 60, "threads": 1, "early_stopping": None})
    history = [h["val_loss"] for h in run.metrics["history"]]
    rows.append([f"forgeml's GAN on digits: validation Frechet distance, epoch 1 -> {len(history)}",
                 round(history[0], 3), round(history[-1], 3), history[-1] < history[0] / 2])
    supported = seeds_out != (1, 128, 128) and all(matches) and history[-1] < history[0] / 2
    return Evidence(
        ["generator", "expected", "got", "as expected"], rows, bool(supported),
        {"en": f"The seeds' stack gave {seeds_out} where it asserted (1, 128, 128). forgeml's generator gave the data's "
               f"shape for {sum(matches)} of {len(SHAPES)} shapes. On the digits its validation Frechet distance went "
               f"from {history[0]:.2f} after the first epoch to {history[-1]:.2f} after {len(history)}.",
         "zh": f"种子代码的结构断言 (1, 128, 128)，实际得到 {seeds_out}。forgeml 的生成器在 {len(SHAPES)} 种形状中有 "
               f"{sum(matches)} 种输出了数据的形状。在手写数字上，它的验证 Frechet 距离从第一个 epoch 后的 {history[0]:.2f} "
               f"降到 {len(history)} 个 epoch 后的 {history[-1]:.2f}。"},
    )
