"""Running an exported graph: an ONNX Runtime session (onnxruntime alone: what a server needs, without torch)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from forgeml.errors import require


def session(path_or_bytes: Any, threads: int | None = None):
    ort = require("onnxruntime", "export", "running an ONNX model")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    source = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
