"""A linear model on the pixels (logistic regression for classes, ridge for values): the image baseline, servable.

It reads the image type's model input as the preprocessing leaves it (resized, normalized, [N, C, H, W]), flattened
in C, H, W order like the type's ``flat()`` part of the ONNX graph, and fits scikit-learn's LogisticRegression or
Ridge (forgeml.models.linear). Under ``model: auto`` on images it is a candidate beside the CNN, so the run never
serves a CNN that this baseline beats on validation. Its logits are a linear function of the pixels, so explain's
Integrated Gradients runs on the same weights as a torch layer (``network``). Saved as one ``.npz`` (no pickle)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from forgeml.config.base import Strict
from forgeml.core import Learner
from forgeml.models import LEARNERS
from forgeml.models.linear import fit_coefficients, load_arrays, onnx_nodes, save_arrays

MODEL_FILE = "model.pixels_linear.npz"
KEY = "image"


class PixelsLinearParams(Strict):
    """Images: logistic (classes) or ridge (values) regression on the normalized pixels; also images' baseline."""

    name: Literal["pixels_linear"] = "pixels_linear"
    C: float = Field(1.0, gt=0, description="logistic regression: inverse regularization strength")
    alpha: float = Field(1.0, ge=0, description="ridge regression: regularization strength")


@dataclass
class PixelsLinearModel:
    """coef [K, C*H*W] and intercept [K] (K = 1 for a value) over the flattened image."""

    coef: np.ndarray
    intercept: np.ndarray
    labels: bool

    def raw(self, image: np.ndarray) -> np.ndarray:
        z = flat(image) @ self.coef.T + self.intercept
        return z if self.labels else z[:, 0]


def flat(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, dtype=np.float64).reshape(len(image), -1)


def network(model: PixelsLinearModel):
    """The fitted model as a torch module (batch dict -> logits, or the standardized value [N, 1]), for gradients."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(model.coef.shape[1], model.coef.shape[0])
            with torch.no_grad():
                self.linear.weight.copy_(torch.from_numpy(model.coef))
                self.linear.bias.copy_(torch.from_numpy(model.intercept))

        def forward(self, batch):
            return self.linear(batch[KEY].flatten(1).to(self.linear.weight.dtype))

    return Net().eval()


@LEARNERS.register("pixels_linear", tags={"own_files", "sample_weights", "gradients", "baseline:dense"}, accepts={"image"})
class PixelsLinear(Learner):
    """Logistic/ridge regression on the pixels; fitted by scikit-learn, saved as numpy arrays. ``gradients``: its
    outputs are differentiable through ``network`` (Integrated Gradients), though it is not trained by the loop."""

    Params = PixelsLinearParams
    file = MODEL_FILE

    @staticmethod
    def fit(params, task, train: dict, y_train, val: dict, y_val, seed: int, threads, sample_weight=None):
        coef, intercept = fit_coefficients(task, flat(train[KEY]), y_train, params.C, params.alpha, seed, sample_weight)
        return PixelsLinearModel(coef, intercept, "labels" in task.tags)

    @staticmethod
    def raw(model, arrays: dict, task=None) -> np.ndarray:
        return model.raw(arrays[KEY])

    @staticmethod
    def network(model):
        return network(model)

    @staticmethod
    def save(model, run_dir: Path) -> None:
        save_arrays(Path(run_dir) / MODEL_FILE, {"coef": model.coef, "intercept": model.intercept},
                    {"labels": model.labels, "format": 1})

    @staticmethod
    def load(run_dir: Path):
        a, meta = load_arrays(Path(run_dir) / MODEL_FILE)
        return PixelsLinearModel(a["coef"], a["intercept"], meta["labels"])

    @staticmethod
    def export_core(model, input_shapes: dict, min_opset: int):
        """'features' [N, C*H*W] (float; the graph's preprocessing flattens the image into it) -> 'probabilities' or
        'standardized'."""
        from onnx import TensorProto, helper

        nodes, inits, out = onnx_nodes("features", model.coef, model.intercept, model.labels)
        graph = helper.make_graph(nodes, "pixels_linear",
                                  [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", model.coef.shape[1]])],
                                  [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", model.coef.shape[0]])], inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", min_opset)], ir_version=9)
