"""Too little data: the learning curve (test accuracy against training rows) of a linear model on the pixels, a CNN
and the same CNN with augmentation, on one fixed test split, so a user sees what more rows and augmentation buy."""
from __future__ import annotations

from pathlib import Path

from forgeml.playbook import Evidence, entry
from forgeml.playbook.common import train

TEST = 0.3  # the same 540 test images for every size (the split takes the test rows first, seeded)
VALS = (0.55, 0.45, 0.3, 0.1)  # the validation fraction sets the training size: 1 - 0.3 - val of 1,797 images
AUGMENT = {"image": {"crop": 1, "rotate": 10}}  # one-pixel shifts and rotations up to 10 degrees


def _curve(path: Path, sizes: list[int], curves: dict[str, list[float]]) -> str:
    from forgeml.evaluate.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for label, accs in curves.items():
        ax.plot(sizes, accs, marker="o", label=label)
    ax.set_xlabel("training images")
    ax.set_ylabel("test accuracy (540 images)")
    ax.set_title("digits: what more rows and augmentation buy", fontsize=10)
    ax.legend(fontsize=8)
    save_figure(fig, Path(path))
    return Path(path).name


@entry(
    "too-little-data", "data",
    question={"en": "I have only a few hundred labelled examples. What helps more: augmentation or more data?",
              "zh": "我只有几百个带标签的样本。数据增强和更多数据，哪个更有用？"},
    answer={"en": "Measure your learning curve first: train on growing fractions of what you have and score each on "
                  "the same test rows. If accuracy is still climbing at your full size, more labelled rows are "
                  "worth paying for, and the curve says roughly how much they buy. Meanwhile, augmentation that "
                  "respects the data (small shifts and rotations for digits, `data.augment`; never flips for text-"
                  "like images) adds variety for free, and a simple baseline beside the network (forgeml trains one "
                  "on every run) shows whether the network has earned its place at this size. For text and images, "
                  "a pretrained model (`model: minilm`) is the other remedy for few rows.",
            "zh": "先测学习曲线：用现有数据的不同比例训练，每次都在同一批测试样本上评分。如果到你的全部数据量时准确率"
                  "仍在上升，就值得花钱标注更多数据，曲线也能大致告诉你能换来多少。同时，符合数据特点的增强（数字图像用"
                  "小幅平移和旋转，`data.augment`；像文字一样的图像不要翻转）可以免费增加多样性；网络旁边的简单基线"
                  "（forgeml 每次运行都会训练一个）能说明在这个数据量下网络是否值得用。对文本和图像，预训练模型"
                  "（`model: minilm`）是样本少时的另一个办法。"},
    claim={"en": "On digits with 269 training images, augmentation raises the CNN's test accuracy, and four times the "
                 "real images (1,077) raise it more than augmentation does.",
           "zh": "在只有 269 张训练图像的 digits 上，数据增强能提高 CNN 的测试准确率，而四倍的真实图像（1,077 张）比增强"
                 "提高得更多。"},
    caveats={"en": "One data set (8x8 grayscale digits), one seed, one test split of 540 images (a point of accuracy "
                   "is about 5 images), one augmentation setting, 30 epochs with early stopping. The validation split "
                   "shrinks as training grows, so the smallest sizes choose their epoch on more rows. 2-core CPU.",
             "zh": "只有一个数据集（8x8 灰度数字）、一个种子、一个 540 张图像的测试划分（1 个百分点约等于 5 张图像）、一种"
                   "增强设置，训练 30 个 epoch 并使用早停。训练集越大验证集越小，所以数据量小的运行在更多样本上选择 epoch。"
                   "在 2 核 CPU 上运行。"},
)
def too_little_data(fast: bool, out: Path) -> Evidence:
    vals = (VALS[0], VALS[-1]) if fast else VALS
    epochs = {"epochs": 3 if fast else 30}
    variants = {"cnn": {}, "cnn + augmentation": {"augment": AUGMENT}}
    rows, sizes, curves = [], [], {"pixels_linear": [], **{label: [] for label in variants}}
    for val in vals:
        for k, (label, data) in enumerate(variants.items()):
            run = train(out, f"little-{val}-{k}", {"source": "bundled:digits", "split": {"val": val, "test": TEST},
                                                   **data}, {"name": "cnn"}, train=epochs)
            size = run.manifest["data"]["rows"]["train"]
            if not k:  # the CNN's baseline, a linear model on the pixels, trained on the same split
                base = round(run.metrics["baseline"]["test"]["accuracy"], 4)
                curves["pixels_linear"].append(base)
                rows.append([size, "pixels_linear", base])
            acc = round(run.metrics["test"]["accuracy"], 4)
            curves[label].append(acc)
            rows.append([size, label, acc])
        sizes.append(size)
    small = {r[1]: r[2] for r in rows if r[0] == sizes[0]}
    large = {r[1]: r[2] for r in rows if r[0] == sizes[-1]}
    gain_aug = small["cnn + augmentation"] - small["cnn"]
    gain_rows = large["cnn"] - small["cnn"]
    supported = bool(gain_aug > 0 and gain_rows > gain_aug)
    plot = _curve(out / "too-little-data.png", sizes, curves)
    return Evidence(
        ["training images", "model", "test accuracy"], rows, supported,
        {"en": f"With {sizes[0]} training images: pixels_linear {small['pixels_linear']:.3f}, CNN {small['cnn']:.3f}, "
               f"CNN with augmentation {small['cnn + augmentation']:.3f} ({100 * gain_aug:+.1f} points). With "
               f"{sizes[-1]}: pixels_linear {large['pixels_linear']:.3f}, CNN {large['cnn']:.3f} "
               f"({100 * gain_rows:+.1f} points over {sizes[0]}), CNN with augmentation "
               f"{large['cnn + augmentation']:.3f}.",
         "zh": f"{sizes[0]} 张训练图像时：pixels_linear {small['pixels_linear']:.3f}，CNN {small['cnn']:.3f}，加增强的 "
               f"CNN {small['cnn + augmentation']:.3f}（{100 * gain_aug:+.1f} 个百分点）。{sizes[-1]} 张时："
               f"pixels_linear {large['pixels_linear']:.3f}，CNN {large['cnn']:.3f}（比 {sizes[0]} 张时"
               f"{100 * gain_rows:+.1f} 个百分点），加增强的 CNN {large['cnn + augmentation']:.3f}。"},
        [plot])
