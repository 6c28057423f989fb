"""The graph's outputs, per task family: class probabilities, a prediction on the target's scale, or an anomaly
score with its flag; and how the manifest describes them."""
from __future__ import annotations

import numpy as np

from forgeml.tasks import task_tags


def output_spec(task_name: str, labels: list | None) -> list[dict]:
    if "scores" in task_tags(task_name):
        return [{"name": "score", "dtype": "float32", "shape": ["batch"], "how": "higher = more anomalous"},
                {"name": "is_anomaly", "dtype": "bool", "shape": ["batch"], "how": "score >= the run's threshold"}]
    if "labels" in task_tags(task_name):
        return [{"name": "probabilities", "dtype": "float32", "shape": ["batch", len(labels)], "labels": labels}]
    return [{"name": "prediction", "dtype": "float32", "shape": ["batch"]}]


def task_outputs(graph, task, helper, numpy_helper, inits) -> list:
    """forgeml's outputs: 'probabilities' (trees also give 'label': dropped), or 'prediction' on the target's scale
    from the standardized value (torch: [N]; trees: 'variable' [N, 1])."""
    from onnx import TensorProto

    if "scores" in task.tags:
        return _anomaly(graph, task, helper, numpy_helper, inits)
    if "labels" in task.tags:
        keep = [o for o in graph.output if o.name == "probabilities"]
        del graph.output[:]
        graph.output.extend(keep)
        return []
    value = graph.output[0].name
    inits += [numpy_helper.from_array(np.asarray([task.state["std"]], dtype=np.float32), "post/std"),
              numpy_helper.from_array(np.asarray([task.state["mean"]], dtype=np.float32), "post/mean"),
              numpy_helper.from_array(np.asarray([-1], dtype=np.int64), "post/flat_shape")]
    nodes = [helper.make_node("Reshape", [value, "post/flat_shape"], ["post/flat"], name="post/flatten"),
             helper.make_node("Mul", ["post/flat", "post/std"], ["post/scaled"], name="post/mul"),
             helper.make_node("Add", ["post/scaled", "post/mean"], ["prediction"], name="post/add")]
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("prediction", TensorProto.FLOAT, ["batch"]))
    return nodes


def _anomaly(graph, task, helper, numpy_helper, inits) -> list:
    """'score' [N] (the detector's, flattened) and 'is_anomaly' = score >= the run's threshold."""
    from onnx import TensorProto

    inner = graph.output[0].name
    if inner == "score":  # a detector's own core names its output 'score': free the name for the graph's output
        for node in graph.node:
            node.output[:] = ["core/score" if o == "score" else o for o in node.output]
        inner = "core/score"
    inits += [numpy_helper.from_array(np.asarray([task.state["threshold"]], dtype=np.float32), "post/threshold"),
              numpy_helper.from_array(np.asarray([-1], dtype=np.int64), "post/score_shape")]
    nodes = [helper.make_node("Reshape", [inner, "post/score_shape"], ["score"], name="post/score"),
             helper.make_node("GreaterOrEqual", ["score", "post/threshold"], ["is_anomaly"], name="post/flag")]
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"]),
                         helper.make_tensor_value_info("is_anomaly", TensorProto.BOOL, ["batch"])])
    return nodes
