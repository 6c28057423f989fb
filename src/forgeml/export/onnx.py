"""ONNX export: one ``model.onnx`` that takes raw feature values and runs with onnxruntime alone.

The graph is three parts joined by name:

    raw inputs ─► preprocessing (ONNX ops, from the manifest) ─► the model (torch.onnx / onnxmltools) ─► outputs

Preprocessing in the graph: numerics are filled, clipped and scaled as the run's data.clean says (NaN and inf mean
"missing"; forgeml.data.clean), categorical strings become level codes (``ai.onnx.ml.LabelEncoder``; unseen -> 0,
empty -> 0 or the most frequent level's code), image pixels are scaled and
normalized per channel. Resizing images and tokenizing text stay outside the graph; the manifest says how
(``export.onnx.inputs``). Outputs: ``probabilities`` [N, classes] for classification, ``prediction`` [N] on the
target's own scale for regression.

Preprocessing nodes are named ``pre/...`` and output nodes ``post/...`` so quantization can leave them alone.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from forgeml.errors import require
from forgeml.export.runtime import session  # noqa: F401  (re-exported: the export's own checks run it)
from forgeml.features import Graph, present
from forgeml.models import get_model

ML_DOMAIN = "ai.onnx.ml"
MIN_OPSET = 17  # IsInf, Unsqueeze-with-axes-input, LayerNormalization


# --------------------------------------------------------------------------------------------- the documented inputs
def input_spec(pre_state: dict) -> list[dict]:
    """The graph's inputs as a user must feed them (stored in the manifest under export.onnx.inputs)."""
    return [spec for ftype, state in present(pre_state) for spec in ftype.raw_inputs(state)]


def write_input_files(pre_state: dict, folder: Path, stem: str) -> dict[str, str]:
    """The files the feature types need beside the graph to compute its inputs (FeatureType.export_files), each
    named after the model file (``model.onnx`` -> ``model.vocab.json``), so that two models exported into one
    folder never share or overwrite them: {the type's name for it: the name written}."""
    from forgeml.artifacts import write_text

    written = {}
    for ftype, state in present(pre_state):
        for name, text in ftype.export_files(state).items():
            write_text(folder / f"{stem}.{name}", text)
            written[name] = f"{stem}.{name}"
    return written


def _renamed(spec, names: dict[str, str]):
    """``spec`` (JSON-like) with every string that is a key of ``names`` replaced by its value."""
    if isinstance(spec, dict):
        return {k: _renamed(v, names) for k, v in spec.items()}
    if isinstance(spec, list):
        return [_renamed(v, names) for v in spec]
    return names.get(spec, spec) if isinstance(spec, str) else spec


def feeds(df: pd.DataFrame, preprocessor) -> dict[str, np.ndarray]:
    """Raw ONNX inputs for rows of a DataFrame (what a user of model.onnx would compute)."""
    out: dict[str, np.ndarray] = {}
    for ftype, state in present(preprocessor.state):
        out.update(ftype.feeds(df, state))
    return out


# --------------------------------------------------------------------------------------------- the model's part
def _torch_core(model, task, pre_state: dict, input_shapes: dict, internal: dict[str, str]):
    """The network as ONNX; ``internal``: model input key -> the graph tensor the preprocessing leaves it in."""
    g = torch.Generator().manual_seed(0)
    example: dict = {}
    sequences: set[str] = set()  # inputs [batch, length] (the types tagged "sequence": token ids)
    for ftype, _ in present(pre_state):
        part = ftype.example(input_shapes, g)
        example.update(part)
        if "sequence" in ftype.tags:
            sequences |= set(part)
    keys = list(internal)
    names = [internal[k] for k in keys]
    core = TorchCore(model, task, keys)
    batch = torch.export.Dim("batch", min=1)
    length = torch.export.Dim("length", min=1, max=4096)
    dynamic = tuple({0: batch, 1: length} if k in sequences else {0: batch} for k in keys)
    from forgeml.models.torch_onnx import export_quietly

    return export_quietly(core.eval(), tuple(example[k] for k in keys), names, [task.graph_core_output], (dynamic,))


class TorchCore(torch.nn.Module):
    """The trained network plus the task's head (Task.graph_head: softmax for classification; [N] values otherwise,
    which the task's ``post/`` nodes finish, left in float by quantization). It takes the model's inputs
    positionally, in ``keys`` order."""

    def __init__(self, net, task, keys: list[str]):
        super().__init__()
        self.net = net
        self.keys = keys
        self.head = task.graph_head

    def forward(self, *inputs):
        return self.head(self.net(dict(zip(self.keys, inputs))).float())


# --------------------------------------------------------------------------------------------- preprocessing + joining
def _preprocessing(pre_state: dict, flat_input: str | None = None, onehot: bool = False):
    """The feature types' nodes from the raw inputs to the model's inputs: (graph parts, model key -> tensor name).
    ``flat_input``: a learner that takes one float matrix (trees: codes; detectors: one-hot) gets it under this name."""
    g = Graph()
    internal: dict[str, str] = {}
    for ftype, state in present(pre_state):
        internal.update(ftype.graph(state, g))
    if flat_input:
        parts = [p for ftype, state in present(pre_state) for p in ftype.flat(state, g, onehot)]
        g.node("Concat", parts, [flat_input], "pre/concat_features", axis=1)
    return g, internal


def build(estimator, model_kind: str, task, pre_state: dict, input_shapes: dict):
    """The complete ONNX model (an onnx.ModelProto) for a trained estimator and its preprocessing."""
    onnx = require("onnx", "export", "forgeml export")
    from onnx import helper, numpy_helper

    if model_kind != "torch":  # a learner with its own ONNX converter (LightGBM: onnxmltools; detectors)
        learner = get_model(model_kind)
        core = learner.export_core(estimator, input_shapes, MIN_OPSET)
        names = [i.name for i in core.graph.input]
        keys = {k for ftype, state in present(pre_state) for k in ftype.model_inputs(state)}
        # a core input named as a model input (token ids) reads it as the preprocessing leaves it; the other, if
        # any, is one float matrix of the types' flat() parts (trees: codes; detectors: one-hot)
        flat = next((n for n in names if n not in keys), None)
        pre, internal = _preprocessing(pre_state, flat, onehot="onehot" in learner.tags)
        for node in core.graph.node:
            node.input[:] = [internal[i] if i in keys and i in names else i for i in node.input]
        replaced = set(names)
    else:
        require("onnxscript", "export", "forgeml export (torch's ONNX exporter needs it)")
        pre, internal = _preprocessing(pre_state)
        core = _torch_core(estimator, task, pre_state, input_shapes, internal)
        replaced = set(internal.values())
    graph = core.graph
    raw_names = {i.name for i in pre.inputs}
    kept_inputs = [i for i in graph.input if i.name not in replaced and i.name not in raw_names]

    post_nodes = task.graph_post(graph, helper, numpy_helper, pre.inits)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(pre.nodes + nodes + post_nodes)
    del graph.input[:]
    graph.input.extend(pre.inputs + kept_inputs)
    graph.initializer.extend(pre.inits)
    del graph.value_info[:]  # the exporter's intermediate shapes can disagree with ONNX's own inference; let tools re-infer

    uses_ml = pre.ml_domain or any(o.domain == ML_DOMAIN for o in core.opset_import)
    _set_opset(core, ML_DOMAIN, 3 if uses_ml else None)
    core.producer_name = "forgeml"
    onnx.checker.check_model(core)
    return core


def _set_opset(model, domain: str, version: int | None) -> None:
    for o in model.opset_import:
        if o.domain == domain:
            if version:
                o.version = max(o.version, version)
            return
    if version:
        model.opset_import.add(domain=domain, version=version)


# --------------------------------------------------------------------------------------------- running it
def save(model, path: Path) -> int:
    from forgeml.artifacts import atomic_write_bytes

    buf = io.BytesIO()
    buf.write(model.SerializeToString())
    atomic_write_bytes(path, buf.getvalue())
    return path.stat().st_size


# --------------------------------------------------------------------------------------------- a run's model.onnx
def outputs_of(session_, feed: dict[str, np.ndarray], task) -> dict[str, np.ndarray]:
    """Run an exported model and put its output in forgeml's form (what task.outputs gives)."""
    return task.from_graph(session_.run(None, feed)[0])


def reference_outputs(loaded, df: pd.DataFrame) -> np.ndarray:
    """What the torch/LightGBM model itself gives for rows: probabilities, or predictions on the target's scale."""
    return loaded.task.graph_reference(loaded.task.outputs(loaded.raw(df)))


def parity(onnx_model, loaded, df: pd.DataFrame) -> float:
    """max |reference - onnx| over rows of df."""
    got = session(onnx_model.SerializeToString()).run(None, feeds(df, loaded.preprocessor))[0]
    return float(np.abs(reference_outputs(loaded, df) - got).max())


def export_run(loaded, path: Path, check_rows: pd.DataFrame | None) -> dict:
    """Write the run's model as ONNX, check it against the model itself, and describe it for the manifest."""
    m = loaded.manifest
    model = build(loaded.estimator, m["model"]["kind"], loaded.task, m["preprocessing"], m["model"]["input_shapes"])
    size = save(model, path)
    info = {
        "file": path.name if path.parent == loaded.run_dir else str(path),
        "size_bytes": size,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "inputs": input_spec(m["preprocessing"]),
        "outputs": loaded.task.graph_outputs(),
    }
    files = write_input_files(m["preprocessing"], path.parent, path.stem)
    if files:  # e.g. the words tokenizer's vocabulary, named in its input's "tokenizer"
        info["files"] = list(files.values())
        info["inputs"] = _renamed(info["inputs"], files)
    if check_rows is not None and len(check_rows):
        info["parity"] = {"rows": len(check_rows), "max_abs_diff": parity(model, loaded, check_rows)}
    return info
