"""``forgeml export`` of a forecasting run with trees over window features (the global LightGBM), alone or averaged
with window networks (forgeml.tasks.forecast_onnx), or of networks that read covariates (no trees): one graph, two
parts joined by tensor name.

    history[, calendar, known, past, static] ─► torch (torch.onnx): each tree member's feature rows [N * H, F] and
                                                level [N, 1], the networks' summed forecast [N, H], how far each
                                                interval reaches below and above the forecast [N, H]
                                              ─► the trees (forgeml's LightGBM converter, onnxmltools), spliced in
                                              ─► [N, H] x level ─► the mean of the members ─► forecast,
                                                 lo_* = forecast - below, hi_* = forecast + above

The member's own object (Forecaster.graph_features; forgeml.models.forecast_lgbm_onnx) gives the torch module that
computes its feature rows, the inputs it reads besides the history, and its trees as an ONNX model.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from forgeml.tasks.forecast_onnx import HistoryForecaster, spec, to_onnx

NETWORKS = "members/networks"


class Parts(nn.Module):
    """(history, the other inputs in ``names`` order) -> [the networks' summed forecast], then each tree member's
    (feature rows, level), then how far each interval reaches below and above the forecast."""

    def __init__(self, base: HistoryForecaster, trees: list[nn.Module], names: list[str]):
        super().__init__()
        self.base, self.trees, self.names = base, nn.ModuleList(trees), names

    def forward(self, history: torch.Tensor, *others: torch.Tensor):
        given = dict(zip(self.names, others))
        outs = self.base.outputs(history, given) if len(self.base.nets) else []
        out = [torch.stack(self.base.medians_of(outs)).sum(dim=0)] if outs else []
        for tree in self.trees:
            out += list(tree(history, given))
        # CQR's offsets are measured from the members' mean forecast: then every member is a network (no trees)
        pred = out[0] / len(outs) if self.base.own is not None else None
        return tuple(out + [part for pair in self.base.offsets(history, outs, pred) for part in pair])


def build_with_trees(model, base: HistoryForecaster, trees: list, levels: list[int], dims: dict, series):
    """The ONNX model (an onnx.ModelProto): ``base`` holds the networks (maybe none) and the intervals, ``trees`` the
    members' graph features; ``dims``: the history's dynamic dimensions, ``series`` the first of them."""
    from onnx import TensorProto, checker, helper, numpy_helper

    inputs, outputs = spec(model)
    h = model.horizon
    example = {"history": torch.ones(2, max([*base.lags, model.state["season"] + 2])) + torch.rand(2, 1)}
    for i in inputs[1:]:
        example[i["name"]] = torch.zeros(2, *i["shape"][1:])
    own = ([NETWORKS] if len(base.nets) else []) + [f"trees{t}/{part}" for t in range(len(trees))
                                                    for part in ("features", "level")] + [
        f"{side}_{lv}" for lv in levels for side in ("below", "above")]
    parts = Parts(base, [t.module() for t in trees], list(example)[1:]).eval()
    proto = to_onnx(parts, example, own, (dims, tuple({0: series} for _ in inputs[1:])))  # forward(history, *others)
    graph = proto.graph
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))

    inits = [numpy_helper.from_array(np.array([-1, h], np.int64), "post/rows_to_series"),
             numpy_helper.from_array(np.array(len(base.nets) + len(trees), np.float32), "post/members")]
    nodes, preds, ml = [], [NETWORKS] if len(base.nets) else [], {}
    for t, tree in enumerate(trees):
        core = tree.core(opset)
        out = _splice(core, f"trees{t}/", f"trees{t}/features", nodes, inits)
        ml.update({o.domain: o.version for o in core.opset_import if o.domain not in ("", "ai.onnx")})
        nodes += [helper.make_node("Reshape", [out, "post/rows_to_series"], [f"trees{t}/rows"], f"post/trees{t}_rows"),
                  helper.make_node("Mul", [f"trees{t}/rows", f"trees{t}/level"], [f"trees{t}/forecast"],
                                   f"post/trees{t}_level")]
        preds.append(f"trees{t}/forecast")
    nodes += [helper.make_node("Sum", preds, ["post/sum"], "post/sum"),
              helper.make_node("Div", ["post/sum", "post/members"], ["forecast"], "post/mean")]
    for lv in levels:
        nodes += [helper.make_node("Sub", ["forecast", f"below_{lv}"], [f"lo_{lv}"], f"post/lo_{lv}"),
                  helper.make_node("Add", ["forecast", f"above_{lv}"], [f"hi_{lv}"], f"post/hi_{lv}")]
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    del graph.output[:]
    graph.output.extend(helper.make_tensor_value_info(o["name"], TensorProto.FLOAT, o["shape"]) for o in outputs)
    del graph.value_info[:]  # the exporter's intermediate shapes; let tools re-infer
    for domain, version in ml.items():
        proto.opset_import.add(domain=domain, version=version)
    proto.producer_name = "forgeml"
    checker.check_model(proto)
    return proto


def _splice(core, prefix: str, source: str, nodes: list, inits: list) -> str:
    """Add ``core``'s nodes and initializers (names prefixed) to ``nodes``/``inits``, its one input read from
    ``source``; the name of its output."""
    (given,) = [i.name for i in core.graph.input]
    name = lambda n: source if n == given else (prefix + n if n else n)  # noqa: E731  ('' is an absent input)
    for node in core.graph.node:
        node.input[:] = [name(n) for n in node.input]
        node.output[:] = [name(n) for n in node.output]
        node.name = prefix + (node.name or node.op_type)
        nodes.append(node)
    for init in core.graph.initializer:
        init.name = prefix + init.name
        inits.append(init)
    return prefix + core.graph.output[0].name
