"""JSON instances -> the ONNX graph's raw inputs, with array code per column (no DataFrame per request).

The graph does the numeric/categorical/image preprocessing itself (forgeml.export.onnx), so each feature type only
gathers its values, checks them and (text) tokenizes. A problem raises InputError naming the row and field; the
server answers it with 422.
"""
from __future__ import annotations

import numpy as np

from forgeml.errors import InputError
from forgeml.features import present

__all__ = ["InputError", "encode", "check_fields", "checked_text", "printable"]


def checked_text(v: str, field: str, row: int) -> str:
    """A JSON string can hold a lone surrogate ("\\ud800"): valid JSON, but not text any model or tokenizer takes."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("is not valid Unicode text (lone surrogate)", field, row) from None
    return v


def printable(text: str) -> str:
    """Any string, made printable in a JSON error message."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
            names = [printable(str(k)) for k in extra[:5]]
            raise InputError(f"unknown field(s) {names}; the model takes {features}", names[0], i)


def encode(rows: list[dict], pre_state: dict, features: list[str]) -> dict[str, np.ndarray]:
    """The feed for the model's ONNX graph (forgeml.export.onnx.input_spec)."""
    check_fields(rows, features)
    feed: dict[str, np.ndarray] = {}
    for ftype, state in present(pre_state):
        feed.update(ftype.encode(rows, state))
    return feed
