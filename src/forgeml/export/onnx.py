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

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from forgeml.data import images as img
from forgeml.data.clean import numeric_steps
from forgeml.errors import require
from forgeml.models import get_model
from forgeml.export.outputs import output_spec, task_outputs

ML_DOMAIN = "ai.onnx.ml"
MIN_OPSET = 17  # IsInf, Unsqueeze-with-axes-input, LayerNormalization
TEXT_INPUTS = ("tokens", "input_ids", "attention_mask")
# what each preprocessed group is called inside the graph (the model's own inputs)
INTERNAL = {"numeric": "numeric_std", "categorical": "categorical_codes", "image": "image_norm"}


# --------------------------------------------------------------------------------------------- the documented inputs
def input_spec(pre_state: dict) -> list[dict]:
    """The graph's inputs as a user must feed them (stored in the manifest under export.onnx.inputs)."""
    spec = []
    if num := pre_state.get("numeric"):
        spec.append({"name": "numeric", "dtype": "float32", "shape": ["batch", len(num["columns"])], "columns": num["columns"],
                     "how": "raw values in column order; NaN means missing"})
    if cat := pre_state.get("categorical"):
        spec.append({"name": "categorical", "dtype": "string", "shape": ["batch", len(cat["columns"])], "columns": cat["columns"],
                     "how": "values as text in column order (whole numbers without '.0'); '' means missing; unseen levels are allowed"})
    if tx := pre_state.get("text"):
        how = ("word ids from the manifest's preprocessing.text.vocab (id = index + 2, 1 = unknown, 0 = padding), "
               "lower-cased words as forgeml.data.text tokenizes them"
               if tx["tokenizer"] == "words" else "MiniLM (BERT WordPiece) tokenizer output, padded with 0")
        if tx.get("normalize"):
            how += f"; text normalized first ({', '.join(tx['normalize'])}: forgeml.data.text.normalize)"
        names = ["tokens"] if tx["tokenizer"] == "words" else ["input_ids", "attention_mask"]
        spec += [{"name": n, "dtype": "int64", "shape": ["batch", "length"], "columns": tx["columns"], "how": how} for n in names]
    if im := pre_state.get("image"):
        spec.append({"name": "image", "dtype": "float32", "shape": ["batch", len(im["mean"]), *im["size"]], "columns": [im["column"]],
                     "how": f"{im['mode']} pixels resized to height x width {im['size'][0]}x{im['size'][1]}, channels first, "
                            f"values 0..{img.source_pixel_range(im):g} as in the source images/arrays"})
    return spec


def feeds(df: pd.DataFrame, preprocessor) -> dict[str, np.ndarray]:
    """Raw ONNX inputs for rows of a DataFrame (what a user of model.onnx would compute)."""
    from forgeml.data.preprocess import numeric_frame
    from forgeml.data.schema import category_keys

    state = preprocessor.state
    out: dict[str, np.ndarray] = {}
    if num := state.get("numeric"):
        out["numeric"] = numeric_frame(df, num["columns"])
    if cat := state.get("categorical"):
        cols = [np.where(df[c].isna().to_numpy(), "", category_keys(df[c]).to_numpy(dtype=object)) for c in cat["columns"]]
        out["categorical"] = np.stack(cols, axis=1).astype(object)
    if "text" in state:
        encoded = preprocessor.transform(df)
        out.update({k: encoded[k] for k in TEXT_INPUTS if k in encoded})
    if im := state.get("image"):
        batch = img.to_batch(df[im["column"]].tolist(), im["mode"], tuple(im["size"]), im.get("array_scale", 1.0))
        out["image"] = (batch * img.source_pixel_range(im)).astype(np.float32)
    return out


# --------------------------------------------------------------------------------------------- the model's part
def _torch_core(model, task, pre_state: dict, input_shapes: dict):
    groups = _groups(pre_state)
    internal = [INTERNAL.get(g, g) for g in groups]
    core = TorchCore(model, task)
    example = _example_inputs(pre_state, input_shapes)
    batch = torch.export.Dim("batch", min=1)
    length = torch.export.Dim("length", min=1, max=4096)
    dynamic = {name: ({0: batch, 1: length} if name in TEXT_INPUTS else {0: batch}) for name in internal}
    out_name = "probabilities" if "labels" in task.tags else "core/score" if "scores" in task.tags else "standardized"
    # the exporter narrates its steps on stdout and warns about its own internals: keep forgeml's output clean
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exporter_log.setLevel(logging.ERROR)
        program = torch.onnx.export(core.eval(), (), None, kwargs=dict(zip(internal, example)), input_names=internal,
                                    output_names=[out_name], dynamic_shapes=dynamic, dynamo=True, external_data=False,
                                    verbose=False, optimize=True)
        exporter_log.setLevel(level)
    return program.model_proto


class TorchCore(torch.nn.Module):
    """The trained network plus its output head: softmax (classification) or the standardized value as [N]
    (regression; the target's mean/std are put back by ``post/`` nodes, which quantization leaves in float)."""

    def __init__(self, net, task):
        super().__init__()
        self.net = net
        self.classification = "labels" in task.tags

    def forward(self, numeric_std=None, categorical_codes=None, tokens=None, input_ids=None, attention_mask=None, image_norm=None):
        named = {"numeric": numeric_std, "categorical": categorical_codes, "tokens": tokens, "input_ids": input_ids,
                 "attention_mask": attention_mask, "image": image_norm}
        raw = self.net({k: v for k, v in named.items() if v is not None}).float()
        if self.classification:
            return torch.softmax(raw, dim=-1)
        return raw if raw.dim() == 1 else raw.squeeze(-1)  # anomaly scores are [N] already


def _groups(pre_state: dict) -> list[str]:
    groups = [g for g in ("numeric", "categorical") if g in pre_state]
    if tx := pre_state.get("text"):
        groups += ["tokens"] if tx["tokenizer"] == "words" else ["input_ids", "attention_mask"]
    if "image" in pre_state:
        groups.append("image")
    return groups


def _example_inputs(pre_state: dict, shapes: dict) -> list:
    g = torch.Generator().manual_seed(0)
    out = []
    for name in _groups(pre_state):
        if name == "numeric":
            out.append(torch.randn(3, shapes["numeric"], generator=g))
        elif name == "categorical":
            out.append(torch.stack([torch.randint(0, c, (3,), generator=g) for c in shapes["categorical"]], dim=1))
        elif name == "tokens":
            out.append(torch.randint(2, max(3, shapes["text_vocab"]), (3, 7), generator=g))
        elif name == "input_ids":
            out.append(torch.randint(1000, 2000, (3, 7), generator=g))
        elif name == "attention_mask":
            out.append(torch.ones(3, 7, dtype=torch.int64))
        else:
            out.append(torch.randn(3, *shapes["image"], generator=g))
    return out


# --------------------------------------------------------------------------------------------- preprocessing + joining
def _preprocessing(pre_state: dict, helper, numpy_helper, lightgbm_input: str | None, onehot: bool = False):
    """Nodes, initializers and graph inputs turning raw inputs into what the model takes."""
    from onnx import TensorProto

    nodes, inits, inputs = [], [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    if num := pre_state.get("numeric"):
        n = len(num["columns"])
        inputs.append(helper.make_tensor_value_info("numeric", TensorProto.FLOAT, ["batch", n]))
        steps = numeric_steps(num)
        row = lambda a: a.astype(np.float32)[None, :]  # noqa: E731
        # NaN and inf mean "missing": filled, clipped, scaled, then the missing indicators (forgeml.data.clean)
        nodes += [
            helper.make_node("IsNaN", ["numeric"], ["pre/nan"], name="pre/isnan"),
            helper.make_node("IsInf", ["numeric"], ["pre/inf"], name="pre/isinf"),
            helper.make_node("Or", ["pre/nan", "pre/inf"], ["pre/missing"], name="pre/or"),
            helper.make_node("Where", ["pre/missing", const("pre/numeric_fill", row(steps["fill"])), "numeric"],
                             ["pre/filled"], name="pre/impute"),
        ]
        filled = "pre/filled"
        if "lo" in steps:
            nodes += [helper.make_node("Max", [filled, const("pre/numeric_lo", row(steps["lo"]))], ["pre/above_lo"], name="pre/clip_lo"),
                      helper.make_node("Min", ["pre/above_lo", const("pre/numeric_hi", row(steps["hi"]))], ["pre/clipped"],
                                       name="pre/clip_hi")]
            filled = "pre/clipped"
        scaled = INTERNAL["numeric"] if not len(steps["indicator"]) else "pre/scaled"
        nodes += [
            helper.make_node("Sub", [filled, const("pre/numeric_center", row(steps["center"]))], ["pre/centered"], name="pre/sub"),
            helper.make_node("Div", ["pre/centered", const("pre/numeric_scale", row(steps["scale"]))], [scaled], name="pre/div"),
        ]
        if len(steps["indicator"]):
            nodes += [
                helper.make_node("Gather", ["pre/missing", const("pre/indicator_cols", steps["indicator"])], ["pre/ind_bool"],
                                 axis=1, name="pre/indicator_gather"),
                helper.make_node("Cast", ["pre/ind_bool"], ["pre/ind"], to=TensorProto.FLOAT, name="pre/indicator_cast"),
                helper.make_node("Concat", [scaled, "pre/ind"], [INTERNAL["numeric"]], axis=1, name="pre/indicator_concat"),
            ]
    if cat := pre_state.get("categorical"):
        m = len(cat["columns"])
        inputs.append(helper.make_tensor_value_info("categorical", TensorProto.STRING, ["batch", m]))
        axes = const("pre/axis1", np.asarray([1], dtype=np.int64))
        codes = []
        for j, levels in enumerate(cat["levels"]):
            idx = const(f"pre/col{j}", np.asarray(j, dtype=np.int64))
            nodes += [
                helper.make_node("Gather", ["categorical", idx], [f"pre/cat{j}"], axis=1, name=f"pre/gather{j}"),
                helper.make_node("LabelEncoder", [f"pre/cat{j}"], [f"pre/code{j}"], domain=ML_DOMAIN, name=f"pre/encode{j}",
                                 **_level_codes(levels, cat.get("missing") == "most_frequent"), default_int64=0),
                helper.make_node("Unsqueeze", [f"pre/code{j}", axes], [f"pre/code{j}_col"], name=f"pre/unsqueeze{j}"),
            ]
            codes.append(f"pre/code{j}_col")
        nodes.append(helper.make_node("Concat", codes, [INTERNAL["categorical"]], axis=1, name="pre/concat_codes"))
    for name in _groups(pre_state):
        if name in TEXT_INPUTS:
            inputs.append(helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "length"]))
    if im := pre_state.get("image"):
        c = len(im["mean"])
        inputs.append(helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", c, *im["size"]]))
        pixel = img.source_pixel_range(im)
        mean, std = np.asarray(im["mean"], dtype=np.float32), np.asarray(im["std"], dtype=np.float32)
        scale = const("pre/image_scale", (1.0 / (pixel * std)).astype(np.float32).reshape(1, c, 1, 1))
        shift = const("pre/image_shift", (mean / std).astype(np.float32).reshape(1, c, 1, 1))
        nodes += [helper.make_node("Mul", ["image", scale], ["pre/image_scaled"], name="pre/image_mul"),
                  helper.make_node("Sub", ["pre/image_scaled", shift], [INTERNAL["image"]], name="pre/image_sub")]
    if lightgbm_input and onehot:  # detectors: standardized numerics, one-hot categories, flattened pixels
        parts = [INTERNAL["numeric"]] if "numeric" in pre_state else []
        for j, levels in enumerate((pre_state.get("categorical") or {}).get("levels", [])):
            codes = const(f"pre/levels{j}", np.arange(1, len(levels) + 1, dtype=np.int64)[None, :])
            nodes += [helper.make_node("Equal", [f"pre/code{j}_col", codes], [f"pre/onehot{j}_bool"], name=f"pre/onehot{j}"),
                      helper.make_node("Cast", [f"pre/onehot{j}_bool"], [f"pre/onehot{j}"], to=TensorProto.FLOAT,
                                       name=f"pre/onehot{j}_cast")]
            parts.append(f"pre/onehot{j}")
        if "image" in pre_state:
            nodes.append(helper.make_node("Flatten", [INTERNAL["image"]], ["pre/pixels"], axis=1, name="pre/flatten"))
            parts.append("pre/pixels")
        nodes.append(helper.make_node("Concat", parts, [lightgbm_input], axis=1, name="pre/concat_features"))
    elif lightgbm_input:  # trees take one float matrix: standardized numerics, then category codes
        parts = []
        if "numeric" in pre_state:
            parts.append(INTERNAL["numeric"])
        if "categorical" in pre_state:
            nodes.append(helper.make_node("Cast", [INTERNAL["categorical"]], ["pre/codes_float"], to=TensorProto.FLOAT, name="pre/cast"))
            parts.append("pre/codes_float")
        nodes.append(helper.make_node("Concat", parts, [lightgbm_input], axis=1, name="pre/concat_features"))
    return nodes, inits, inputs


def _level_codes(levels: list, missing_is_mode: bool) -> dict:
    """LabelEncoder keys -> codes (1..n; 0 = unseen); '' (missing) -> the most frequent level's code if asked."""
    keys, codes = [str(v) for v in levels], list(range(1, len(levels) + 1))
    if missing_is_mode and levels and "" not in keys:
        keys, codes = keys + [""], codes + [1]
    return {"keys_strings": keys, "values_int64s": codes}


def build(estimator, model_kind: str, task, pre_state: dict, input_shapes: dict):
    """The complete ONNX model (an onnx.ModelProto) for a trained estimator and its preprocessing."""
    onnx = require("onnx", "export", "forgeml export")
    from onnx import helper, numpy_helper

    onehot = False
    if model_kind != "torch":  # a learner with its own ONNX converter (LightGBM: onnxmltools; detectors)
        learner = get_model(model_kind)
        core = learner.export_core(estimator, input_shapes, MIN_OPSET)
        model_input, onehot = core.graph.input[0].name, "detector" in learner.tags
    else:
        require("onnxscript", "export", "forgeml export (torch's ONNX exporter needs it)")
        core = _torch_core(estimator, task, pre_state, input_shapes)
        model_input = None
    graph = core.graph
    pre_nodes, pre_inits, raw_inputs = _preprocessing(pre_state, helper, numpy_helper, model_input, onehot)
    replaced = set(INTERNAL.values()) | ({model_input} if model_input else set())
    kept_inputs = [i for i in graph.input if i.name not in replaced and i.name not in TEXT_INPUTS]

    post_nodes = task_outputs(graph, task, helper, numpy_helper, pre_inits)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(pre_nodes + nodes + post_nodes)
    del graph.input[:]
    graph.input.extend(raw_inputs + kept_inputs)
    graph.initializer.extend(pre_inits)
    del graph.value_info[:]  # the exporter's intermediate shapes can disagree with ONNX's own inference; let tools re-infer

    uses_ml = "categorical" in pre_state or any(o.domain == ML_DOMAIN for o in core.opset_import)
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
def session(path_or_bytes: Any, threads: int | None = None):
    ort = require("onnxruntime", "export", "running an ONNX model")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    source = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def save(model, path: Path) -> int:
    from forgeml.artifacts import atomic_write_bytes

    buf = io.BytesIO()
    buf.write(model.SerializeToString())
    atomic_write_bytes(path, buf.getvalue())
    return path.stat().st_size


# --------------------------------------------------------------------------------------------- a run's model.onnx
def outputs_of(session_, feed: dict[str, np.ndarray], task) -> dict[str, np.ndarray]:
    """Run an exported model and put its output in forgeml's form ({'pred', 'proba'} / standardized 'pred')."""
    out = session_.run(None, feed)[0].astype(np.float64)
    if "scores" in task.tags:
        return task.outputs(out)
    if "labels" in task.tags:
        out /= out.sum(axis=1, keepdims=True)  # float32 probabilities sum to 1 only within ~1e-7
        return {"pred": task.decide(out), "proba": out}
    return {"pred": (out - task.state["mean"]) / task.state["std"]}


def reference_outputs(loaded, df: pd.DataFrame) -> np.ndarray:
    """What the torch/LightGBM model itself gives for rows: probabilities, or predictions on the target's scale."""
    out = loaded.task.outputs(loaded.raw(df))
    if "score" in out:
        return out["score"]
    return out["proba"] if "proba" in out else loaded.task.decode(out["pred"])


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
        "outputs": output_spec(m["task"], m["target"].get("labels")),
    }
    if check_rows is not None and len(check_rows):
        info["parity"] = {"rows": len(check_rows), "max_abs_diff": parity(model, loaded, check_rows)}
    return info
