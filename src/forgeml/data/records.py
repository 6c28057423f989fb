"""JSON instances -> the ONNX graph's raw inputs, with array code per column (no DataFrame per request).

The graph does the numeric/categorical/image preprocessing itself (see forgeml.export.onnx), so this only gathers
values column by column, checks them and tokenizes text. A problem raises InputError naming the row and field;
the server answers it with 422.
"""
from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np

from forgeml.data import images as img
from forgeml.data import text as txt
from forgeml.data.preprocess import TEXT_SEPARATOR
from forgeml.data.schema import canonical
from forgeml.errors import DataError
from forgeml.data.images import source_pixel_range

MAX_IMAGE_SIDE = 4096


class InputError(ValueError):
    """A request value the model cannot take; the message names the field."""

    def __init__(self, message: str, field: str | None = None, row: int | None = None):
        super().__init__(message)
        self.field, self.row = field, row


def _text(v: str, field: str, row: int) -> str:
    """A JSON string can hold a lone surrogate ("\\ud800"): valid JSON, but not text any model or tokenizer takes."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("is not valid Unicode text (lone surrogate)", field, row) from None
    return v


def _finite(v) -> bool:
    try:
        return math.isfinite(v) and abs(v) <= 3.4e38  # float32 range
    except OverflowError:  # an integer too large for a float
        return False


def _numeric(rows: list[dict], columns: list[str]) -> np.ndarray:
    out = np.empty((len(rows), len(columns)), dtype=np.float32)
    for j, c in enumerate(columns):
        for i, r in enumerate(rows):
            v = r.get(c)
            if v is None:
                out[i, j] = np.nan
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and _finite(v):
                out[i, j] = v
            else:
                raise InputError(f"must be a finite number or null, got {_safe(repr(v))}"[:200], c, i)
    return out


def _safe(text: str) -> str:
    """Any string, made printable in a JSON error message."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _category(v: Any) -> str:
    """The level key training uses (forgeml.data.schema.canonical: 1.0 and 1 are one level); '' for missing."""
    if v is None:
        return ""
    if isinstance(v, (str, int, float, bool)):
        return str(canonical(v))
    raise TypeError


def _categorical(rows: list[dict], columns: list[str]) -> np.ndarray:
    out = np.empty((len(rows), len(columns)), dtype=object)
    for j, c in enumerate(columns):
        for i, r in enumerate(rows):
            try:
                out[i, j] = _text(_category(r.get(c)), c, i)
            except (TypeError, ValueError):  # ValueError: int too long for str()
                raise InputError(f"must be a string, number, boolean or null, got {type(r.get(c)).__name__}", c, i) from None
    return out


def _texts(rows: list[dict], columns: list[str]) -> list[str]:
    texts = []
    for i, r in enumerate(rows):
        parts = []
        for c in columns:
            v = r.get(c)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                v = str(v)  # as training reads a number in a text column
            elif v is not None and not isinstance(v, str):
                raise InputError(f"must be a string or null, got {type(v).__name__}", c, i)
            parts.append(_text(v or "", c, i))
        texts.append(TEXT_SEPARATOR.join(parts))
    return texts


def _image(value: Any, state: dict, field: str, row: int) -> np.ndarray:
    """One image as float32 [C, H, W] in the graph's pixel range."""
    size, mode, top = tuple(state["size"]), state["mode"], source_pixel_range(state)
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


def check_fields(rows: list, features: list[str]) -> None:
    wanted = set(features)
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise InputError(f"each instance must be an object of feature values, got {type(r).__name__}", None, i)
        missing = [f for f in features if f not in r]
        if missing:
            raise InputError(f"missing feature(s) {missing}; the model takes {features}", missing[0], i)
        extra = [k for k in r if k not in wanted]
        if extra:
            names = [_safe(str(k)) for k in extra[:5]]
            raise InputError(f"unknown field(s) {names}; the model takes {features}", names[0], i)


def encode(rows: list[dict], pre_state: dict, features: list[str], tokenizer=None) -> dict[str, np.ndarray]:
    """The feed for the model's ONNX graph (see export.onnx.input_spec)."""
    check_fields(rows, features)
    feed: dict[str, np.ndarray] = {}
    if num := pre_state.get("numeric"):
        feed["numeric"] = _numeric(rows, num["columns"])
    if cat := pre_state.get("categorical"):
        feed["categorical"] = _categorical(rows, cat["columns"])
    if tx := pre_state.get("text"):
        feed.update(txt.tokenize(_texts(rows, tx["columns"]), tx, tokenizer))
    if im := pre_state.get("image"):
        c = im["column"]
        feed["image"] = np.stack([_image(r[c], im, c, i) for i, r in enumerate(rows)]).astype(np.float32)
    return feed
