"""One ONNX graph for a weighted ensemble: every fold model's own graph (each learner's ``export_core``: input
'features' [N, F]), its names prefixed, all reading the one 'features' input; their outputs (probabilities [N, k], or
values [N, 1] for regression) scaled by weight / fits and summed. A member that cannot export names itself."""
from __future__ import annotations

import numpy as np

from forgeml.core import LEARNERS
from forgeml.errors import ForgeMLError, RunError
from forgeml.models.gbdt import feature_width

INPUT = "features"


def joined(model, input_shapes: dict, min_opset: int):
    import onnx
    from onnx import compose, helper, numpy_helper

    nodes, inits, terms = [], [], []
    opsets: dict[str, int] = {}
    out_info = None
    for m in model.members:
        learner = LEARNERS.get(m["name"])
        for i, est in enumerate(m["models"]):
            try:
                core = learner.export_core(est, input_shapes, min_opset)
            except ForgeMLError as exc:
                raise RunError(f"the ensemble cannot be exported to ONNX: its member {m['name']} cannot ({exc}). "
                               "forgeml serve runs ONNX, so this ensemble cannot be served either; retrain with "
                               "model.exportable: true, or without that member (model.members)") from None
            prefix = f"ens/{m['name']}/{i}/"
            core = compose.add_prefix(core, prefix)
            graph = core.graph
            for node in graph.node:
                node.input[:] = [INPUT if x == prefix + INPUT else x for x in node.input]
            # the probabilities (a tree converter also outputs its 'label'), or the one value output
            outs = [o for o in graph.output if not o.name.endswith("/label")]
            out = next((o for o in outs if o.name.endswith("/probabilities")), outs[0])
            if out_info is None:
                out_info = out
            weight = numpy_helper.from_array(np.asarray(m["weight"] / len(m["models"]), dtype=np.float32), prefix + "weight")
            nodes += list(graph.node)
            nodes.append(helper.make_node("Mul", [out.name, weight.name], [prefix + "weighted"], name=prefix + "weighted"))
            inits += list(graph.initializer) + [weight]
            terms.append(prefix + "weighted")
            for o in core.opset_import:
                opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
    labels = out_info.name.endswith("/probabilities")
    final = "probabilities" if labels else "value"
    nodes.append(helper.make_node("Sum", terms, [final], name="ens/sum"))
    shape = [d.dim_param or d.dim_value or None for d in out_info.type.tensor_type.shape.dim] or ["N", None]
    graph = helper.make_graph(nodes, "forgeml_ensemble",
                              [helper.make_tensor_value_info(INPUT, onnx.TensorProto.FLOAT, ["N", feature_width(input_shapes)])],
                              [helper.make_tensor_value_info(final, onnx.TensorProto.FLOAT, shape)], inits)
    opsets[""] = max(opsets.get("", 0), opsets.pop("ai.onnx", 0), min_opset)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
