"""Image columns (file paths or arrays): resized to the run's size and mode, normalized per channel with the training
split's mean and std. Resizing stays outside the ONNX graph; the graph scales and normalizes the pixels."""
from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from forgeml.core import FEATURES, NUMBER_DATATYPES, FeatureType
from forgeml.data import images as img

INTERNAL = "image_norm"
MAX_IMAGE_SIDE = 4096
STATS_SAMPLE = 2000  # rows the mean/std and the size are taken from


def _normalized(df, state) -> np.ndarray:
    batch = img.to_batch(df[state["column"]].tolist(), state["mode"], tuple(state["size"]), state.get("array_scale", 1.0))
    mean = np.asarray(state["mean"], dtype=np.float32)[None, :, None, None]
    std = np.asarray(state["std"], dtype=np.float32)[None, :, None, None]
    return (batch - mean) / std


def request_image(value: Any, state: dict, field: str, row: int) -> np.ndarray:
    """One JSON image (base64 file or nested pixel lists) as float32 [C, H, W] in the graph's pixel range."""
    from forgeml.errors import InputError
    from forgeml.errors import DataError

    size, mode, top = tuple(state["size"]), state["mode"], img.source_pixel_range(state)
    if isinstance(value, str):
        from PIL import Image

        try:
            data = base64.b64decode(value.split(",", 1)[-1] if value.startswith("data:") else value, validate=True)
            picture = Image.open(io.BytesIO(data))
            if max(picture.size) > MAX_IMAGE_SIDE:  # from the header, before decoding the pixels
                raise InputError(f"image of {picture.size[0]}x{picture.size[1]} is too large (max side {MAX_IMAGE_SIDE})", field, row)
            arr = np.asarray(picture.convert(mode), dtype=np.uint8)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001  (binascii, PIL's decoders and its decompression-bomb guard)
            raise InputError(f"is not a base64-encoded image file ({type(exc).__name__})", field, row) from None
        return img.to_array(arr, mode, size) * top  # 8-bit pixels -> [0, 1] -> the graph's pixel range
    if isinstance(value, list):
        try:
            arr = np.asarray(value)
            if arr.dtype.kind not in "iuf":  # strings, booleans, objects (ragged lists)
                raise ValueError
            arr = arr.astype(np.float32)
        except (ValueError, TypeError, OverflowError):
            raise InputError("must be a nested list of numbers (H x W or H x W x C) of equal lengths", field, row) from None
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)) or min(arr.shape[:2]) < 1:
            raise InputError(f"must be H x W or H x W x C (C = 1, 3 or 4) pixel values, got shape {list(arr.shape)}", field, row)
        if max(arr.shape[:2]) > MAX_IMAGE_SIDE:
            raise InputError(f"image of {arr.shape[1]}x{arr.shape[0]} is too large (max side {MAX_IMAGE_SIDE})", field, row)
        if not np.isfinite(arr).all():
            raise InputError("pixel values must be finite numbers", field, row)
        if arr.ndim == 3 and arr.shape[2] == 4:
            arr = arr[:, :, :3]
        try:
            return img.to_array(arr, mode, size, scale=top) * top
        except DataError as exc:
            raise InputError(str(exc), field, row) from None
    raise InputError(f"must be a nested list of pixel values or a base64-encoded image file, got {type(value).__name__}", field, row)


@FEATURES.register("image", order=40, tags={"files"})
class Image(FeatureType):
    """``files``: a folder of image files can stand for this column (predict, explain)."""

    # ---- the Open Inference Protocol: pixels [N, H, W(, C)] of any number type, or N encoded image files (BYTES)
    tensor_datatype, tensor_accepts = "FP32", (*NUMBER_DATATYPES, "BYTES")

    def tensor_shape(self, field):
        return [-1, *field["size"]] + ([3] if field.get("mode") == "RGB" else [])

    def tensor_values(self, array, datatype, shape, column):
        from forgeml.errors import InputError

        if datatype == "BYTES":  # image files: a JSON instance holds one as base64
            if shape not in ([shape[0]], [shape[0], 1]):
                raise InputError(f"takes one image file per instance as BYTES, shape [N] or [N, 1]; got {shape}", column, None)
            return [base64.b64encode(v).decode() if isinstance(v, bytes) else v for v in array]
        if len(shape) not in (3, 4):
            raise InputError(f"takes pixels of shape [N, H, W] or [N, H, W, C]; got {shape}", column, None)
        return [p.tolist() for p in array.reshape(shape).astype(np.float64)]

    # ---- baseline, augmentation, SMOTE (forgeml.core.FeatureType): a linear model on the flattened pixels; warps
    # and jitter; SMOTE does not interpolate images
    baseline_block = "dense"
    augment = "pixels"

    # ---- detection (forgeml.features.detect): pixel arrays, or over 90% paths with an image extension; one per model
    detect_order = 20
    max_columns = 1

    def detect(self, values):
        from forgeml.data.sources import IMAGE_EXTS

        if isinstance(values.iloc[0], np.ndarray):
            return True
        return bool(values.astype(str).str.lower().str.endswith(tuple(IMAGE_EXTS)).mean() > 0.9)

    def fit(self, df, columns, data_cfg, context):
        name = columns[0]  # max_columns: one image column per model
        # a seeded sample across classes (an image folder lists its rows class by class)
        values = df[name].iloc[np.random.default_rng(0).permutation(len(df))[:STATS_SAMPLE]].tolist()
        mode, size = img.describe(values)
        mode = mode if data_cfg.image_mode == "auto" else data_cfg.image_mode
        size = tuple(data_cfg.image_size or img.auto_size(size))
        img.check_memory(len(df), 1 if mode == "L" else 3, size)
        scale = img.array_scale(values)
        sample = img.to_batch(values, mode, size, scale)
        std = sample.std(axis=(0, 2, 3))
        mean, std = sample.mean(axis=(0, 2, 3)).tolist(), np.where(std > 1e-12, std, 1.0).tolist()
        if context.get("privacy") is not None:  # no statistic of the private rows: the pixels' known range
            from forgeml.features.private import PIXEL_MEAN, PIXEL_STD

            mean, std = [PIXEL_MEAN] * len(mean), [PIXEL_STD] * len(std)
        return {"column": name, "mode": mode, "size": list(size), "array_scale": scale, "pixel_range": img.pixel_range(values),
                "mean": mean, "std": std}

    def transform(self, df, state):
        return {"image": _normalized(df, state)}

    def shapes(self, state):
        return {"image": [len(state["mean"]), *state["size"]] if state else None}

    def model_inputs(self, state):
        return ["image"]

    def raw_inputs(self, state):
        return [{"name": "image", "dtype": "float32", "shape": ["batch", len(state["mean"]), *state["size"]], "columns": [state["column"]],
                 "how": f"{state['mode']} pixels resized to height x width {state['size'][0]}x{state['size'][1]}, channels first, "
                        f"values 0..{img.source_pixel_range(state):g} as in the source images/arrays"}]

    def feeds(self, df, state):
        batch = img.to_batch(df[state["column"]].tolist(), state["mode"], tuple(state["size"]), state.get("array_scale", 1.0))
        return {"image": (batch * img.source_pixel_range(state)).astype(np.float32)}

    def encode(self, rows, state):
        c = state["column"]
        return {"image": np.stack([request_image(r[c], state, c, i) for i, r in enumerate(rows)]).astype(np.float32)}

    def graph(self, state, g):
        c = len(state["mean"])
        g.add_input("image", "FLOAT", ["batch", c, *state["size"]])
        pixel = img.source_pixel_range(state)
        mean, std = np.asarray(state["mean"], dtype=np.float32), np.asarray(state["std"], dtype=np.float32)
        scale = g.const("pre/image_scale", (1.0 / (pixel * std)).astype(np.float32).reshape(1, c, 1, 1))
        shift = g.const("pre/image_shift", (mean / std).astype(np.float32).reshape(1, c, 1, 1))
        g.node("Mul", ["image", scale], ["pre/image_scaled"], "pre/image_mul")
        g.node("Sub", ["pre/image_scaled", shift], [INTERNAL], "pre/image_sub")
        return {"image": INTERNAL}

    def flat(self, state, g, onehot):
        g.node("Flatten", [INTERNAL], ["pre/pixels"], "pre/flatten", axis=1)
        return ["pre/pixels"]

    def example(self, shapes, generator):
        import torch

        return {"image": torch.randn(3, *shapes["image"], generator=generator)}

    def field(self, state, column):
        h, w = state["size"]
        return {"name": column, "type": self.name, "size": list(state["size"]), "mode": state["mode"],
                "schema": {"anyOf": [
                    {"type": "string", "contentEncoding": "base64", "contentMediaType": "image/*",
                     "pattern": r"^(data:[^,]*,)?[A-Za-z0-9+/]*={0,2}$",
                     "description": "a base64-encoded image file (PNG, JPEG, ...), optionally as a data: URL"},
                    {"type": "array", "minItems": 1, "maxItems": MAX_IMAGE_SIDE,
                     "items": {"type": "array", "minItems": 1, "maxItems": MAX_IMAGE_SIDE, "items": {"anyOf": [
                         {"type": "number"}, {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 4}]}},
                     "description": f"pixel values, H x W or H x W x C (C = 1, 3 or 4), rows of equal length, "
                                    f"0..{img.source_pixel_range(state):g}"}],
                    "description": f"an image; resized to {h}x{w} ({state['mode']}). JSON Schema cannot say all of it: "
                                   "the string must decode to an image file, and the pixel rows must be of equal length"}}

    # ---- explanations (forgeml.core.FeatureType): heat-maps over the picture, measured from a black image
    explains_as = "regions"
    absent_description = "a black image"

    def absent_input(self, state):
        mean, std = np.asarray(state["mean"], dtype=np.float32), np.asarray(state["std"], dtype=np.float32)
        return {"image": (-mean / std).reshape(1, -1, 1, 1)}  # pixel value 0 in every channel, normalized

    def displayable(self, state, x):
        mean = np.asarray(state["mean"], dtype=np.float32)[None, :, None, None]
        std = np.asarray(state["std"], dtype=np.float32)[None, :, None, None]
        return np.clip(x * std + mean, 0.0, 1.0)
