"""The feature space generated images are scored in (forgeml.evaluate.generative), without downloaded weights: a small
CNN that forgeml trains on the run's own training images, to tell their classes apart, or, when the data has fewer
than two classes, which of four flips an image went through (a self-supervised task that still needs shapes).

Its penultimate layer (a global average pool, ``FEATURES`` values) is the space of the Frechet distance, KID and
precision/recall; its class predictions give a conditional model's per-class accuracy. This is NOT the Inception
network of the published FID: numbers are comparable only between runs scored by the same network (the same data,
split and seed), never with papers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

FEATURES = 64
STEPS = 600  # optimizer steps, in 5 to 30 epochs: a few seconds on the 8x8 digits (0.99 validation accuracy)
BATCH = 64
_TRAINED: dict[str, "Scorer"] = {}  # the last scorers trained in this process, by what they were trained on


class FeatureNet(nn.Module):
    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, FEATURES, 3, 1, 1), nn.BatchNorm2d(FEATURES), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(FEATURES, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def flips(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image in four versions (as is, left-right, up-down, both) and which one it is: labels without labels."""
    views = [x, x.flip(3), x.flip(2), x.flip(2).flip(3)]
    return torch.cat(views), torch.arange(4).repeat_interleave(len(x))


@dataclass
class Scorer:
    """The trained network, what its classes are (``"labels"``: the data's, ``"flips"``: self-supervised) and its
    accuracy on the validation images (how much its feature space can be trusted)."""

    net: FeatureNet
    kind: str
    val_accuracy: Optional[float] = None

    @torch.no_grad()
    def _run(self, images: np.ndarray, head: bool) -> np.ndarray:
        self.net.eval()
        out, before = [], torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for i in range(0, len(images), 512):
                x = torch.from_numpy(np.ascontiguousarray(images[i:i + 512], dtype=np.float32))
                out.append((self.net(x) if head else self.net.body(x)).numpy())
        finally:
            torch.set_num_threads(before)
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, FEATURES))

    def features(self, images: np.ndarray) -> np.ndarray:
        return self._run(images, head=False)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The class each image is taken for (``kind == "labels"`` only)."""
        return self._run(images, head=True).argmax(axis=1)


def train_scorer(images: np.ndarray, labels: Optional[np.ndarray], val_images: np.ndarray,
                 val_labels: Optional[np.ndarray], seed: int) -> Scorer:
    """Train the feature network on the training images (normalized model inputs [N, C, H, W]) and their class codes
    (None, or fewer than two classes: the four flips instead). Training is deterministic, so runs on the same images
    and seed in one process (a GAN and a VAE on one split, a benchmark's models) share one network: the same scale."""
    import hashlib

    key = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in (images, val_images)) +
                         (np.asarray(labels).tobytes() if labels is not None else b"-") + str(seed).encode()).hexdigest()
    if key not in _TRAINED:
        if len(_TRAINED) >= 4:
            _TRAINED.pop(next(iter(_TRAINED)))
        before = torch.get_num_threads()
        torch.set_num_threads(1)  # a network this small trains fastest on one thread (and shares a busy CPU best)
        try:
            _TRAINED[key] = _train(images, labels, val_images, val_labels, seed)
        finally:
            torch.set_num_threads(before)
    return _TRAINED[key]


def _train(images: np.ndarray, labels: Optional[np.ndarray], val_images: np.ndarray, val_labels: Optional[np.ndarray],
           seed: int) -> Scorer:
    torch.manual_seed(seed)
    by_labels = labels is not None and len(np.unique(labels)) >= 2
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64)) if by_labels else None
    if y is None:
        x, y = flips(x)
    classes = int(y.max()) + 1
    net = FeatureNet(x.shape[1], classes)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    order = torch.Generator().manual_seed(seed)
    steps_per_epoch = max(1, len(x) // BATCH)
    epochs = min(30, max(5, -(-STEPS // steps_per_epoch)))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=order)
        for b in range(steps_per_epoch):
            idx = perm[b * BATCH:(b + 1) * BATCH]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    scorer = Scorer(net, "labels" if by_labels else "flips")
    if len(val_images):
        if by_labels and val_labels is not None:
            scorer.val_accuracy = float((scorer.predict(val_images) == np.asarray(val_labels)).mean())
        elif not by_labels:
            vx, vy = flips(torch.from_numpy(np.ascontiguousarray(val_images, dtype=np.float32)))
            scorer.val_accuracy = float((scorer.predict(vx.numpy()) == vy.numpy()).mean())
    return scorer
