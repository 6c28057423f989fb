"""Generated images as files a person looks at: one PNG per image, grids of them, rows of grids (a sample per epoch,
a latent interpolation). Pixels come as floats in [0, 1], [N, C, H, W] (C = 1 or 3); small images are enlarged with
nearest-neighbour pixels so a grid of 8x8 digits is readable. Written with Pillow, atomically."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import numpy as np

MIN_CELL = 48  # images smaller than this (pixels per side) are enlarged by a whole factor in grids
GAP = 2


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """[N, C, H, W] floats in [0, 1] -> [N, H, W] or [N, H, W, 3] bytes."""
    x = np.clip(np.nan_to_num(np.asarray(pixels, dtype=np.float64)), 0.0, 1.0)
    x = np.rint(x * 255).astype(np.uint8)
    return x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)


def png_bytes(image: np.ndarray) -> bytes:
    """One image ([H, W] or [H, W, 3] bytes) as a PNG file's bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def grid(pixels: np.ndarray, columns: Optional[int] = None, scale: Optional[int] = None) -> np.ndarray:
    """Images [N, C, H, W] in [0, 1] tiled row by row on a white background: [rows * H', columns * W'(, 3)]."""
    images = to_uint8(pixels)
    n, h, w = images.shape[:3]
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = max(1, int(np.ceil(n / columns)))
    scale = scale or max(1, MIN_CELL // max(h, w))
    cell_h, cell_w = h * scale + GAP, w * scale + GAP
    out = np.full((rows * cell_h + GAP, columns * cell_w + GAP, *images.shape[3:]), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        big = img.repeat(scale, axis=0).repeat(scale, axis=1)
        out[GAP + r * cell_h:GAP + r * cell_h + h * scale, GAP + c * cell_w:GAP + c * cell_w + w * scale] = big
    return out


def write_png(path: Path, image: np.ndarray) -> Path:
    from forgeml.artifacts import atomic_write_bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, png_bytes(image))
    return path


def write_grid(path: Path, pixels: np.ndarray, columns: Optional[int] = None) -> Path:
    return write_png(path, grid(pixels, columns))
