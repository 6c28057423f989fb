"""Typed tensors of the Open Inference Protocol (KServe v2 / Triton HTTP) <-> a served model's instances and response.

A model's inputs are its features, one tensor each, named after the feature. Each feature type says which datatypes
its tensor takes, the shape it declares and how a tensor becomes its values (forgeml.core.FeatureType.tensor_*):
numbers of any type for a numeric column, text (BYTES) or numbers for a categorical one, text for text and dates,
pixels [N, H, W(, C)] or encoded files for images; one value per instance is shape [N] or [N, 1]. Tensor data is
JSON (flat or nested, row-major) or, with the binary tensor data extension that tritonclient uses by default, raw bytes
after the JSON header (``Inference-Header-Content-Length``); a BYTES element there is a 4-byte little-endian length
and its bytes. The tensors become the same instances a v1 request carries, so the feature types check the values as
they do for v1 (forgeml.features.records.encode).

The outputs are the task's response fields (forgeml.core.Task.response), each a tensor: predictions, probabilities
[N, K], labels [K], scores, ... with the datatype that the field's JSON schema implies.
"""
from __future__ import annotations

import json
import math
import struct
from typing import Any, Optional

import numpy as np

from forgeml.core import NUMBER_DATATYPES
from forgeml.features import get
from forgeml.features.records import InputError, checked_text

NUMPY = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
         "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
         "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_}


class TensorError(ValueError):
    """A request the protocol refuses: 400 with ``{"error": message}``."""


# ------------------------------------------------------------------------------------------------ metadata
def input_metadata(signature: dict) -> list[dict]:
    return [{"name": f["name"], "datatype": get(f["type"]).tensor_datatype, "shape": get(f["type"]).tensor_shape(f)}
            for f in signature["inputs"]]


def output_metadata(signature: dict) -> list[dict]:
    return [{"name": name, "datatype": _datatype(schema)[0], "shape": [-1] * _datatype(schema)[1]}
            for name, schema in signature["outputs"].items()]


def _datatype(schema: dict) -> tuple[str, int]:
    """(datatype, rank) of a response field from its JSON schema: an array of items, or of arrays of items."""
    items, rank = schema.get("items", {}), 1
    if items.get("type") == "array":
        items, rank = items.get("items", {}), 2
    if "enum" in items:
        values = items["enum"]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return "INT64", rank
        return "BYTES", rank
    return {"number": "FP32", "integer": "INT64", "boolean": "BOOL"}.get(items.get("type"), "BYTES"), rank


# ------------------------------------------------------------------------------------------------ requests
def parse(body: bytes, header_length: Optional[str]) -> tuple[dict, bytes]:
    """(the JSON request, the binary data after it)."""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise TensorError(f"Inference-Header-Content-Length {header_length!r} is not a length within the body "
                              f"({len(body)} bytes)")
        head, blob = body[:int(header_length)], body[int(header_length):]
    else:
        head, blob = body, b""
    try:
        request = json.loads(head)
    except (ValueError, RecursionError):
        raise TensorError("the request is not valid JSON (expected {\"inputs\": [{\"name\", \"shape\", \"datatype\", "
                          "\"data\"}, ...]})") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or not request["inputs"]:
        raise TensorError("the request must be an object with 'inputs': a non-empty list of tensors "
                          "{\"name\", \"shape\", \"datatype\", \"data\"}")
    for key in ("parameters",):
        if key in request and not isinstance(request[key], dict):
            raise TensorError(f"'{key}' must be an object")
    if "id" in request:
        try:
            checked_text(request["id"] if isinstance(request["id"], str) else None, "id", None)
        except (InputError, AttributeError):
            raise TensorError("'id' must be a string of valid Unicode text") from None
    if "outputs" in request and not (isinstance(request["outputs"], list)
                                     and all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in request["outputs"])):
        raise TensorError("'outputs' must be a list of {\"name\": OUTPUT} objects")
    return request, blob


def instances(request: dict, blob: bytes, signature: dict, limit: int) -> list[dict]:
    """The request's tensors as instances (one dict of feature values per row), every tensor checked: its name, its
    datatype, its shape against its data and the other tensors' batch size."""
    fields = {f["name"]: f for f in signature["inputs"]}
    columns: dict[str, list] = {}
    offset, batch = 0, None
    for i, tensor in enumerate(request["inputs"]):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise TensorError(f"inputs[{i}] must be a tensor object with a 'name'")
        name = tensor["name"]
        if name not in fields:
            raise TensorError(f"input '{name}': the model has no such input; its inputs are {list(fields)}")
        if name in columns:
            raise TensorError(f"input '{name}' is given twice")
        datatype, shape = tensor.get("datatype"), tensor.get("shape")
        if not isinstance(datatype, str) or datatype not in NUMPY:
            raise TensorError(f"input '{name}': datatype {datatype!r} is not one this server takes ({', '.join(NUMPY)})")
        if not (isinstance(shape, list) and shape and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
            raise TensorError(f"input '{name}': shape must be a non-empty list of non-negative integers, got {shape!r}")
        kind, ftype = fields[name]["type"], get(fields[name]["type"])
        if datatype not in ftype.tensor_accepts:
            numbers = [d for d in ftype.tensor_accepts if d in NUMBER_DATATYPES]
            send = ["a number type (FP32, FP64, INT32, INT64, ...)"] * bool(numbers) + [d for d in ftype.tensor_accepts if d not in numbers]
            raise TensorError(f"input '{name}' ({kind}): datatype {datatype} is not accepted; send {' or '.join(send)}")
        size = tensor.get("parameters", {}).get("binary_data_size") if isinstance(tensor.get("parameters"), dict) else None
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(blob):
                raise TensorError(f"input '{name}': binary_data_size {size!r} runs past the {len(blob)} bytes of binary data")
            array = _from_bytes(blob[offset:offset + size], datatype, shape, name)
            offset += size
        else:
            if "data" not in tensor:
                raise TensorError(f"input '{name}' has no 'data' (nor binary_data_size)")
            array = _from_json(tensor["data"], datatype, shape, name)
        values = ftype.tensor_values(array, datatype, shape, name)
        columns[name] = _scalars(array, datatype, shape, name) if values is None else values
        if batch is not None and shape[0] != batch:
            raise TensorError(f"input '{name}': batch size {shape[0]} differs from the other inputs' {batch}")
        batch = shape[0]
    if offset != len(blob):
        raise TensorError(f"{len(blob) - offset} bytes of binary data belong to no input")
    missing = [f for f in fields if f not in columns]
    if missing:
        raise TensorError(f"missing input(s) {missing}; the model takes {list(fields)}")
    if not batch:
        raise TensorError("the inputs hold no instance (batch size 0)")
    if batch > limit:
        raise TensorError(f"{batch} instances in one request; the limit is {limit}")
    names = list(columns)
    return [dict(zip(names, row)) for row in zip(*columns.values())]


def _from_bytes(raw: bytes, datatype: str, shape: list[int], name: str) -> np.ndarray:
    count = math.prod(shape)
    if datatype == "BYTES":
        items, at = [], 0
        while at < len(raw):
            if at + 4 > len(raw):
                raise TensorError(f"input '{name}': truncated BYTES element length at byte {at}")
            (n,) = struct.unpack_from("<I", raw, at)
            if at + 4 + n > len(raw):
                raise TensorError(f"input '{name}': a BYTES element of {n} bytes runs past its data")
            items.append(raw[at + 4:at + 4 + n])
            at += 4 + n
        array = np.empty(len(items), dtype=object)
        array[:] = items
    else:
        itemsize = np.dtype(NUMPY[datatype]).itemsize
        if len(raw) != count * itemsize:
            raise TensorError(f"input '{name}': {len(raw)} bytes of {datatype} data do not fill shape {shape} "
                              f"({count * itemsize} bytes)")
        array = np.frombuffer(raw, dtype=NUMPY[datatype])
    if array.size != count:
        raise TensorError(f"input '{name}': {array.size} elements do not fill shape {shape} ({count})")
    return array


def _from_json(data: Any, datatype: str, shape: list[int], name: str) -> np.ndarray:
    count = math.prod(shape)
    flat = _flatten(data, name)
    if len(flat) != count:
        raise TensorError(f"input '{name}': {len(flat)} elements do not fill shape {shape} ({count})")
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise TensorError(f"input '{name}': BYTES data in JSON must be strings")
        array = np.empty(count, dtype=object)
        array[:] = flat
        return array
    if datatype == "BOOL":
        if not all(isinstance(v, bool) for v in flat):
            raise TensorError(f"input '{name}': BOOL data must be true or false")
        return np.asarray(flat, dtype=np.bool_)
    # numbers; null means a missing value (JSON has no NaN)
    if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in flat):
        raise TensorError(f"input '{name}': {datatype} data must be numbers (or null for missing)")
    try:
        with np.errstate(over="raise", invalid="raise"):
            if datatype.startswith("FP"):
                return np.asarray([math.nan if v is None else v for v in flat], dtype=NUMPY[datatype])
            if any(v is None or isinstance(v, float) for v in flat):
                raise TensorError(f"input '{name}': {datatype} data must be integers")
            return np.asarray(flat, dtype=NUMPY[datatype])
    except (OverflowError, FloatingPointError):
        raise TensorError(f"input '{name}': a value does not fit {datatype}") from None


def _scalars(array: np.ndarray, datatype: str, shape: list[int], name: str) -> list:
    """One value per instance from a tensor of shape [N] or [N, 1]: text from BYTES, None for a NaN."""
    if shape not in ([shape[0]], [shape[0], 1]):
        raise TensorError(f"input '{name}': takes one value per instance, shape [N] or [N, 1]; got {shape}")
    if datatype == "BYTES":
        # invalid UTF-8 bytes decode to lone surrogates, which the feature types' own text check refuses
        return [checked_text(v if isinstance(v, str) else v.decode("utf-8", "surrogateescape"), name, i)
                for i, v in enumerate(array)]
    if datatype.startswith("FP"):
        return [None if math.isnan(v) else v for v in array.astype(np.float64).tolist()]
    return array.tolist()


def _flatten(data: Any, name: str) -> list:
    if not isinstance(data, list):
        raise TensorError(f"input '{name}': 'data' must be a list (flat or nested, row-major)")
    out, stack = [], [iter(data)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                if len(stack) > 8:
                    raise TensorError(f"input '{name}': 'data' is nested deeper than a tensor")
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out


# ------------------------------------------------------------------------------------------------ responses
def outputs(fields: dict, signature: dict, request: dict) -> tuple[list[dict], bytes]:
    """The response's output tensors (JSON data, or binary data when the request asks for it) and the binary data."""
    wanted = request.get("outputs")
    names = list(fields)
    binary_all = bool((request.get("parameters") or {}).get("binary_data_output"))
    binary = {n: binary_all for n in names}
    if wanted:
        unknown = [o["name"] for o in wanted if o["name"] not in fields]
        if unknown:
            raise TensorError(f"output '{unknown[0]}': the model has no such output; its outputs are {names}")
        names = [o["name"] for o in wanted]
        binary = {o["name"]: bool((o.get("parameters") or {}).get("binary_data", binary_all)) for o in wanted}
    tensors, blob = [], []
    for name in names:
        datatype, _ = _datatype(signature["outputs"].get(name, {}))
        array = _array(fields[name], datatype)
        tensor = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary[name]:
            raw = _to_bytes(array, datatype)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            blob.append(raw)
        else:
            tensor["data"] = array.reshape(-1).tolist() if datatype != "BYTES" else [str(v) for v in array.reshape(-1)]
        tensors.append(tensor)
    return tensors, b"".join(blob)


def _array(values, datatype: str) -> np.ndarray:
    if datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        array[:] = [str(v) for v in values]
        return array
    return np.asarray(values, dtype=NUMPY[datatype])


def _to_bytes(array: np.ndarray, datatype: str) -> bytes:
    if datatype != "BYTES":
        return np.ascontiguousarray(array).tobytes()
    parts = []
    for v in array.reshape(-1):
        b = v.encode("utf-8")
        parts += [struct.pack("<I", len(b)), b]
    return b"".join(parts)
