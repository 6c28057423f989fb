"""Batched inference of a torch network on encoded inputs (no gradients), shared by training, evaluation, export
checks and serving."""
from __future__ import annotations

import numpy as np
import torch

from forgeml.precision import autocast


def to_tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


@torch.no_grad()
def predict_raw(model, arrays: dict, batch_size: int = 512, device=None, precision: str = "fp32") -> np.ndarray:
    device = device or next(model.parameters()).device
    tensors = arrays if isinstance(next(iter(arrays.values())), torch.Tensor) else to_tensors(arrays)
    n = len(next(iter(tensors.values())))
    model.eval()
    outs = []
    for i in range(0, n, batch_size):
        batch = {k: v[i : i + batch_size].to(device, non_blocking=True) for k, v in tensors.items()}
        with autocast(precision, device):
            outs.append(model(batch).float().cpu())
    return torch.cat(outs).numpy().astype(np.float64)
