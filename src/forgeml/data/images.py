"""Images to arrays: files (path strings) or in-memory arrays, resized to one size, as float32 [C, H, W]."""
from __future__ import annotations

from collections import Counter

import numpy as np

from forgeml.errors import DataError


def _open(path: str):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
        return img
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"corrupt or unreadable image: {path} ({exc}); fix or remove the file") from None


def describe(values) -> tuple[str, tuple[int, int]]:
    """Choose mode (L or RGB) and size (the most common (H, W)) from a sample of the training images."""
    sample = list(values[:200])
    sizes, modes = Counter(), Counter()
    for v in sample:
        if isinstance(v, np.ndarray):
            sizes[v.shape[:2]] += 1
            modes["RGB" if v.ndim == 3 and v.shape[2] == 3 else "L"] += 1
        else:
            img = _open(str(v))
            sizes[(img.height, img.width)] += 1
            modes["L" if img.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"] += 1
    return modes.most_common(1)[0][0], sizes.most_common(1)[0][0]


AUTO_MAX_SIDE = 64  # default longest side: a CPU trains a small CNN on 64 px images in minutes, not hours
MEMORY_LIMIT_BYTES = 8 * 1024**3


def auto_size(size: tuple[int, int], max_side: int = AUTO_MAX_SIDE) -> tuple[int, int]:
    """Shrink the most common size to fit max_side, keeping the aspect ratio (never enlarge)."""
    h, w = size
    factor = min(1.0, max_side / max(h, w))
    return max(1, round(h * factor)), max(1, round(w * factor))


def check_memory(rows: int, channels: int, size: tuple[int, int]) -> None:
    """Images are decoded into memory once; refuse clearly rather than run out of memory half-way."""
    need = rows * channels * size[0] * size[1] * 4
    if need > MEMORY_LIMIT_BYTES:
        raise DataError(
            f"{rows} images at {size[0]}x{size[1]}x{channels} would take {need / 1024**3:.1f} GB in memory "
            f"(limit {MEMORY_LIMIT_BYTES / 1024**3:.0f} GB); set a smaller data.image_size"
        )


def array_scale(values) -> float:
    """The value range of in-memory float arrays in training (digits: 16), so every input lands in [0, 1]."""
    floats = [v for v in values if isinstance(v, np.ndarray) and not np.issubdtype(v.dtype, np.integer)]
    return float(max((np.nanmax(v) for v in floats), default=1.0)) or 1.0


def pixel_range(values) -> float:
    """The largest pixel value of the training images as given: 255 for files and integer arrays, else the float
    arrays' own maximum (digits: 16). Exported models and the server take pixels in this range."""
    if any(isinstance(v, np.ndarray) and not np.issubdtype(v.dtype, np.integer) for v in values):
        return array_scale(values)
    return 255.0


def to_array(value, mode: str, size: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """One image as float32 [C, H, W] in [0, 1]: files and integer arrays are 8-bit (/255), float arrays are
    divided by the training arrays' range, so a model trained on arrays can predict files and vice versa."""
    from PIL import Image

    if isinstance(value, np.ndarray):
        arr = np.asarray(value, dtype=np.float32) / (255.0 if np.issubdtype(value.dtype, np.integer) else scale)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise DataError(f"an image array must be H x W or H x W x C, got shape {value.shape}")
        if mode == "L" and arr.shape[2] != 1:
            arr = arr.mean(axis=2, keepdims=True)
        elif mode == "RGB" and arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        if arr.shape[:2] != tuple(size):
            chans = [np.asarray(Image.fromarray(arr[:, :, c], mode="F").resize((size[1], size[0]))) for c in range(arr.shape[2])]
            arr = np.stack(chans, axis=2)
        return arr.transpose(2, 0, 1)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise DataError("an image value is missing; every row needs an image")
    img = _open(str(value)).convert(mode)
    if (img.height, img.width) != tuple(size):
        img = img.resize((size[1], size[0]))
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr.transpose(2, 0, 1)


def to_batch(values, mode: str, size: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    return np.stack([to_array(v, mode, size, scale) for v in values]).astype(np.float32)


def source_pixel_range(image_state: dict) -> float:
    """The largest pixel value of the source: 255 for image files and 8-bit arrays, else the arrays' own maximum."""
    if "pixel_range" in image_state:
        return float(image_state["pixel_range"])
    scale = image_state.get("array_scale", 1.0)  # runs from before pixel_range was recorded
    return 255.0 if scale == 1.0 else float(scale)
