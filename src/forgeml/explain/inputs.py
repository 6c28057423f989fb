"""What to explain: rows from a file, an image folder or inline JSON, checked against the run's feature schema and
encoded the way the model was trained.

JSON rows go through the server's own validation (forgeml.features.records), so the CLI and ``POST .../explain`` accept
and refuse exactly the same values; a problem names the row and the field.
"""
from __future__ import annotations

import json
from typing import Union

import numpy as np
import pandas as pd

from forgeml.errors import DataError


def is_json(arg: str) -> bool:
    return arg.lstrip().startswith(("{", "["))


def parse_json_rows(arg: str) -> list[dict]:
    """'{"age": 40, ...}' or '[{...}, {...}]' -> list of rows."""
    try:
        value = json.loads(arg)
    except ValueError as exc:
        raise DataError(f"--input looks like JSON but does not parse ({exc}); give one row as '{{\"column\": value, ...}}' "
                        "or a list of such rows") from None
    rows = [value] if isinstance(value, dict) else value
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise DataError("--input JSON must be an object (one row: column -> value) or a non-empty list of objects")
    return rows


def encode_rows(model, rows: list[dict]) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """JSON rows -> (the model's encoded inputs, a DataFrame of the rows for display).

    Raises forgeml.features.records.InputError (row and field named) for a missing column, an unknown field or a value
    of the wrong type. A value for the target column is allowed (it is shown as the true label) and not used."""
    from forgeml.features.records import encode

    target = model.manifest["target"]["name"]
    clean = [{k: v for k, v in r.items() if k != target} if isinstance(r, dict) else r for r in rows]
    feed = encode(clean, model.manifest["preprocessing"], model.features)
    frame = pd.DataFrame(rows)
    image = model.preprocessor.state.get("image")
    if image:
        from forgeml.data.images import source_pixel_range

        # the feed holds pixels on the source's range (as the ONNX graph takes them); normalize as training did
        mean = np.asarray(image["mean"], dtype=np.float32)[None, :, None, None]
        std = np.asarray(image["std"], dtype=np.float32)[None, :, None, None]
        arrays = {"image": ((feed["image"] / source_pixel_range(image) - mean) / std).astype(np.float32)}
        frame = frame.drop(columns=[image["column"]])
        return arrays, frame
    return encode_frame(model, frame), frame


def encode_frame(model, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    if len(frame) == 0:
        raise DataError("no rows to explain")
    return model.preprocessor.transform(frame)


def read_input(model, source: Union[str, list]) -> tuple[dict[str, np.ndarray], pd.DataFrame, str]:
    """--input (a file, a folder of images, bundled:NAME, or inline JSON) -> (encoded, rows, description)."""
    from forgeml.run import read_inputs
    from forgeml.features.records import InputError

    if isinstance(source, list) or is_json(str(source)):
        rows = source if isinstance(source, list) else parse_json_rows(str(source))
        try:
            arrays, frame = encode_rows(model, rows)
        except InputError as exc:
            where = f"row {exc.row}" if exc.row is not None else "the input"
            field = f", column {exc.field!r}" if exc.field else ""
            raise DataError(f"--input does not match the model's schema ({where}{field}): {exc}") from None
        return arrays, frame, f"{len(rows)} JSON row(s)"
    frame = _single_image(model, str(source)) if not isinstance(source, list) else None
    if frame is None:
        frame = read_inputs(source, model.manifest)
    try:
        arrays = encode_frame(model, frame)
    except DataError as exc:
        raise DataError(f"--input {source} does not match the model's schema: {exc}") from None
    return arrays, frame, str(source)


def _single_image(model, source: str):
    """One image file as --input (api.read_inputs reads tables and folders)."""
    from pathlib import Path

    from forgeml.data.sources import IMAGE_EXTS

    image = model.preprocessor.state.get("image")
    path = Path(source)
    if image is None or path.suffix.lower() not in IMAGE_EXTS:
        return None
    if not path.is_file():
        raise DataError(f"input not found: {source}")
    return pd.DataFrame({image["column"]: [str(path)]})
