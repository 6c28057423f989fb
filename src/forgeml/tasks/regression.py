"""Regression: the target is standardized for training; predictions come back on the original scale."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from forgeml.errors import DataError
from forgeml.evaluate.metrics import SUMMARY_KEYS
from forgeml.tasks import TASKS
from forgeml.tasks.supervised import SupervisedTask

if TYPE_CHECKING:  # annotations only; pandas is imported where rows are handled, so serving needs none
    import pandas as pd


@TASKS.register("regression", tags={"target", "scale"})
class Regression(SupervisedTask):
    summary_keys = SUMMARY_KEYS["regression"]
    primary_metric = "rmse"

    # ---- the target column (forgeml.tasks.infer_task): numbers (asked after classification)
    infer_order = 20

    @classmethod
    def claims_target(cls, y: pd.Series) -> bool:
        import pandas as pd

        return pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)

    @classmethod
    def check_target(cls, y: pd.Series) -> None:
        if not cls.claims_target(y):
            sample = y.dropna().astype(str).unique()[:3].tolist()
            raise DataError(
                f"regression needs a numeric target, but {y.name!r} holds values like {sample}; "
                "use --task classification or convert the column to numbers"
            )

    @classmethod
    def fit(cls, y: pd.Series) -> "Regression":
        values = y.to_numpy(dtype=np.float64)
        std = float(values.std())
        return cls({"mean": float(values.mean()), "std": std if std > 1e-12 else 1.0})

    @property
    def out_dim(self) -> int:
        return 1

    def encode(self, y: pd.Series) -> np.ndarray:
        return ((y.to_numpy(dtype=np.float64) - self.state["mean"]) / self.state["std"]).astype(np.float32)

    def loss(self, out, y):
        import torch.nn.functional as F

        return F.mse_loss(out.float().squeeze(-1), y)

    def outputs(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        return {"pred": raw.reshape(-1).astype(np.float64)}

    def response_fields(self) -> dict[str, dict]:
        return {"predictions": {"type": "array", "items": {"type": "number"}, "description": "the predicted value of each instance"}}

    def decode(self, pred: np.ndarray) -> np.ndarray:
        return pred * self.state["std"] + self.state["mean"]

    # ---- the exported graph returns the prediction on the target's scale (the learner's is standardized)
    graph_core_output = "standardized"

    def graph_outputs(self) -> list[dict]:
        return [{"name": "prediction", "dtype": "float32", "shape": ["batch"]}]

    def graph_post(self, graph, helper, numpy_helper, inits: list) -> list:
        """Flatten the learner's output (torch: [N]; trees: 'variable' [N, 1]), then x * std + mean."""
        from onnx import TensorProto

        value = graph.output[0].name
        inits += [numpy_helper.from_array(np.asarray([self.state["std"]], dtype=np.float32), "post/std"),
                  numpy_helper.from_array(np.asarray([self.state["mean"]], dtype=np.float32), "post/mean"),
                  numpy_helper.from_array(np.asarray([-1], dtype=np.int64), "post/flat_shape")]
        nodes = [helper.make_node("Reshape", [value, "post/flat_shape"], ["post/flat"], name="post/flatten"),
                 helper.make_node("Mul", ["post/flat", "post/std"], ["post/scaled"], name="post/mul"),
                 helper.make_node("Add", ["post/scaled", "post/mean"], ["prediction"], name="post/add")]
        del graph.output[:]
        graph.output.append(helper.make_tensor_value_info("prediction", TensorProto.FLOAT, ["batch"]))
        return nodes

    def from_graph(self, first) -> dict[str, np.ndarray]:
        return {"pred": (first.astype(np.float64) - self.state["mean"]) / self.state["std"]}

    def graph_reference(self, outputs: dict) -> np.ndarray:
        return self.decode(outputs["pred"])

    def response(self, first, finite) -> dict:
        return {"predictions": finite(first.astype(np.float64).reshape(len(first)), "prediction").tolist()}

    def metrics(self, y: np.ndarray, outputs: dict[str, np.ndarray]) -> dict:
        from forgeml.evaluate.metrics import regression_metrics

        return regression_metrics(self.decode(y), self.decode(outputs["pred"]))

    def quick_metrics(self, y: np.ndarray, outputs: dict[str, np.ndarray]) -> dict:
        return self.metrics(y, outputs)  # mae, rmse, r2: already cheap
