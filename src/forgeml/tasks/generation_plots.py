"""A generation run's pictures (forgeml.evaluate.image_grids): the test samples beside real test images, the same
validation noise drawn at every epoch (one PNG per epoch in plots/epochs/, and the evenly spaced ones in one
picture), and a latent interpolation strip of the kept network."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from forgeml.evaluate.image_grids import write_grid, write_png, grid

GRID = 64
STEPS = 10  # images per interpolation row
ROWS = 6


def pixels(task, x: np.ndarray) -> np.ndarray:
    """Normalized model inputs [N, C, H, W] -> pixels in [0, 1]."""
    mean = np.asarray(task.state["pixel_mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(task.state["pixel_std"], dtype=np.float32).reshape(1, -1, 1, 1)
    return np.clip(x * std + mean, 0.0, 1.0)


def by_class(images: np.ndarray, labels, classes: int, per: int = 8) -> tuple[np.ndarray, int]:
    """Up to ``per`` images of each class, one class per row (conditional runs); else the first GRID images."""
    if labels is None or not classes:
        return images[:GRID], 8
    rows = [images[labels == c][:per] for c in range(classes)]
    rows = [np.concatenate([r, np.ones((per - len(r), *images.shape[1:]), images.dtype)]) for r in rows]  # blank = white
    return np.concatenate(rows), per


def plots(task, data, outputs: dict, folder: Path) -> list[Path]:
    folder = Path(folder)
    cond = task.state["conditional"]
    labels = data.y["test"].labels if cond else None
    k = len(task.classes) if cond else 0
    shown, cols = by_class(pixels(task, outputs["images"]), labels, k)
    real, _ = by_class(pixels(task, data.enc["test"]["image"]), labels, k)
    made = [write_grid(folder / "samples.png", shown, cols), write_grid(folder / "real_images.png", real, cols)]
    if task.epoch_samples:
        first = first_epoch(task)
        for e, x in enumerate(task.epoch_samples):
            write_grid(folder / "epochs" / f"epoch_{first + e:03d}.png", pixels(task, x), 8)
        n = len(task.epoch_samples)
        picked = sorted({round(i * (n - 1) / max(1, min(n, 8) - 1)) for i in range(min(n, 8))})
        rows = [grid(pixels(task, task.epoch_samples[e]), len(task.epoch_samples[e])) for e in picked]
        made.append(write_png(folder / "samples_by_epoch.png", np.concatenate(rows, axis=0)))
    if task.kept is not None:
        made.append(write_grid(folder / "interpolation.png", interpolation(task, task.kept), STEPS))
    return made


def first_epoch(task) -> int:
    """The epoch (from 1) of the first images kept in memory: 1, or after --resume the first resumed epoch (the kept
    learner's last checkpoint counts the epochs run)."""
    import json

    last = Path(task.state.get("checkpoints", "")) / str(task.kept_name) / "last.json"
    try:
        ran = int(json.loads(last.read_text())["epoch"]) + 1
    except (OSError, ValueError, KeyError):
        return 1
    return max(1, ran - len(task.epoch_samples) + 1)


def interpolation(task, model) -> np.ndarray:
    """ROWS rows of STEPS images decoded along a straight line between two noise vectors (a conditional model: each
    row one class, in turn); [ROWS * STEPS, C, H, W] pixels."""
    import torch

    gen = torch.Generator().manual_seed(int(task.state.get("seed", 0)) + 7)
    ends = torch.randn(ROWS, 2, model.latent_dim, generator=gen)
    t = torch.linspace(0, 1, STEPS).view(1, STEPS, 1)
    z = (ends[:, :1] * (1 - t) + ends[:, 1:] * t).reshape(ROWS * STEPS, -1)
    label = None
    if model.classes:
        label = (torch.arange(ROWS) % model.classes).repeat_interleave(STEPS)
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        x = model.generate(z.to(device), None if label is None else label.to(device))
        return model.to_pixels(x).cpu().numpy()
