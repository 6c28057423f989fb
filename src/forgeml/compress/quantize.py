"""int8 quantization of an exported model with ONNX Runtime (``torch.ao.quantization`` is deprecated).

- static (QDQ): weights and activations in int8; activation ranges come from calibration rows of the training split.
  Best for convolutions and dense layers.
- dynamic: int8 weights, activation ranges computed on the fly per batch. The method for LSTMs and transformers,
  whose activation ranges vary per input.

Preprocessing (``pre/``), output (``post/``) and softmax nodes stay in float: they are cheap and quantizing them would cost
accuracy on raw inputs.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx

from forgeml.core import LEARNERS
from forgeml.errors import ConfigError, require
from forgeml.models import get_model

def quantizable(model_name: str) -> tuple[str, ...]:
    """The int8 methods a learner supports (its ``quantize:static`` / ``quantize:dynamic`` tags)."""
    tags = get_model(model_name).tags
    return tuple(m for m in ("static", "dynamic") if f"quantize:{m}" in tags)


def methods_for(model_name: str) -> tuple[str, ...]:
    """The methods measured by default; the first is the run's "int8" variant. A dynamic-quantized convolution
    (ConvInteger) is slower than fp32 on CPUs, so learners tagged ``conv`` get static only."""
    methods = quantizable(model_name)
    if not methods:
        supported = ", ".join(n for n, _ in LEARNERS.items() if quantizable(n))
        raise ConfigError(f"int8 quantization applies to the neural models ({supported}); {model_name!r} has no weight "
                          "matrices to quantize: distill it into a neural student instead (--distill --student mlp)")
    conv = "conv" in get_model(model_name).tags
    return tuple(m for m in methods if not (conv and m == "dynamic"))


class _Reader:
    """Feeds calibration rows to the static quantizer in batches."""

    def __init__(self, feed: dict[str, np.ndarray], batch: int = 32):
        n = len(next(iter(feed.values())))
        self._batches = iter([{k: v[i : i + batch] for k, v in feed.items()} for i in range(0, n, batch)])

    def get_next(self):
        return next(self._batches, None)


def _excluded(model_path: Path) -> list[str]:
    model = onnx.load(str(model_path))
    # the output softmax stays in float too: int8 probabilities would no longer sum to one
    excluded = [n.name for n in model.graph.node if n.name.startswith(("pre/", "post/")) or n.op_type == "Softmax"]
    if any(n.name.startswith("post/") for n in model.graph.node):  # regression: a value, not a class
        # the last dense layer stays float too, or every prediction would snap to one of 256 levels
        last = [n for n in model.graph.node if n.op_type in ("Gemm", "MatMul")][-1:]
        excluded += [n.name for n in last]
    return excluded


@contextlib.contextmanager
def _quiet():
    """ORT's quantizer logs advice to the root logger and prints; keep forgeml's output readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def quantize(model_path: Path, out_path: Path, method: str, calibration: dict[str, np.ndarray] | None = None) -> Path:
    """Write an int8 copy of an ONNX model; ``calibration`` (raw input arrays) is required for static."""
    q = require("onnxruntime.quantization", "export", "int8 quantization")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp, _quiet():
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(model_path), str(prepared), skip_symbolic_shape=True)  # fold, fuse, infer shapes
        excluded = _excluded(prepared)  # names after fusion
        if method == "static":
            if calibration is None:
                raise ValueError("static quantization needs calibration inputs")
            q.quantize_static(str(prepared), str(out_path), _Reader(calibration), quant_format=q.QuantFormat.QDQ,
                              per_channel=True, activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
                              nodes_to_exclude=excluded, calibrate_method=q.CalibrationMethod.MinMax)
        elif method == "dynamic":
            q.quantize_dynamic(str(prepared), str(out_path), weight_type=q.QuantType.QInt8, nodes_to_exclude=excluded)
        else:
            raise ConfigError(f"unknown quantization method {method!r}; use static or dynamic")
    return out_path
