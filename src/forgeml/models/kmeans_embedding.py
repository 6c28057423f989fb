"""K-Means on an autoencoder's embedding (``--model kmeans_embedding``): for images, where distances between raw
pixels say little about what the picture shows. A small dense autoencoder (pixels -> 256 -> ``code`` -> 256 ->
pixels, ReLU, mean squared error) is trained on the training images; K-Means (scikit-learn, k from the task as for
``kmeans``) then clusters their codes. Raw output, saving and ONNX follow models/kmeans.py: distances to every
centre [N, k]; the encoder's weights are numpy arrays on the fitted KMeans, saved with it by skops (no pickle); the
ONNX graph is the encoder (two Gemm and a ReLU) in front of K-Means' distance nodes."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from forgeml.config.base import Strict
from forgeml.core import Learner
from forgeml.models import LEARNERS
from forgeml.models.detectors import LAYOUT_ATTR, detector_matrix, layout, load_skops, save_skops, shapes_from_arrays
from forgeml.models.kmeans import MODEL_FILE, ONNX_INPUT, fit_for_task, onnx_core

CODES = "encoder/codes"
ENCODER_ATTR = "forgeml_encoder_"  # [W1, b1, W2, b2] of the encoder (float32), stored on the fitted KMeans
HIDDEN = 256


class KMeansEmbeddingParams(Strict):
    """K-Means on the codes of an autoencoder trained on the training images."""

    name: Literal["kmeans_embedding"] = "kmeans_embedding"
    code: int = Field(16, ge=2, le=256, description="size of the autoencoder's code (the space K-Means clusters)")
    epochs: int = Field(60, ge=1, description="autoencoder training epochs (Adam, batches of 128)")
    n_init: int = Field(10, gt=0, description="k-means++ restarts per k; the lowest inertia is kept")
    max_iter: int = Field(300, gt=0, description="Lloyd iterations per restart")


def encode(weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """The encoder in numpy (what the ONNX graph computes): relu(x W1 + b1) W2 + b2."""
    w1, b1, w2, b2 = weights
    return np.maximum(x @ w1 + b1, 0.0) @ w2 + b2


def train_autoencoder(x: np.ndarray, code: int, epochs: int, seed: int) -> list[np.ndarray]:
    """A dense autoencoder on the rows of ``x`` (one thread: a small network on a possibly shared CPU); the encoder's
    weights as float32 numpy arrays."""
    import torch
    from torch import nn

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        width = x.shape[1]
        encoder = nn.Sequential(nn.Linear(width, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, code))
        decoder = nn.Sequential(nn.Linear(code, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, width))
        params = [*encoder.parameters(), *decoder.parameters()]
        opt = torch.optim.Adam(params, lr=1e-3)
        data = torch.as_tensor(x, dtype=torch.float32)
        order = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            for idx in torch.randperm(len(data), generator=order).split(128):
                batch = data[idx]
                loss = nn.functional.mse_loss(decoder(encoder(batch)), batch)
                opt.zero_grad()
                loss.backward()
                opt.step()
        first, last = encoder[0], encoder[2]
        return [t.detach().numpy().astype(np.float32) for t in (first.weight.T, first.bias, last.weight.T, last.bias)]
    finally:
        torch.set_num_threads(before)


def codes(estimator, arrays: dict) -> np.ndarray:
    x = detector_matrix(arrays, getattr(estimator, LAYOUT_ATTR)).astype(np.float32)
    return encode(getattr(estimator, ENCODER_ATTR), x).astype(np.float64)


# opt_in: model auto keeps plain K-Means; this one trains when named (--model kmeans_embedding)
@LEARNERS.register("kmeans_embedding", tags={"clusterer", "own_files", "opt_in"}, accepts={"image"})
class KMeansEmbeddingClusterer(Learner):
    Params = KMeansEmbeddingParams
    file = MODEL_FILE

    @staticmethod
    def fit(params, task, train: dict, y_train, val: dict, y_val, seed: int, threads, sample_weight=None,
            shapes: dict | None = None):
        shapes = layout(shapes) if shapes else shapes_from_arrays(train, *([val] if val else []))
        x = detector_matrix(train, shapes).astype(np.float32)
        weights = train_autoencoder(x, params.code, params.epochs, seed)
        z = encode(weights, x).astype(np.float64)
        z_val = encode(weights, detector_matrix(val, shapes).astype(np.float32)).astype(np.float64) if val else z[:0]
        estimator = fit_for_task(task, z, z_val, params.n_init, params.max_iter, seed)
        setattr(estimator, LAYOUT_ATTR, shapes)
        setattr(estimator, ENCODER_ATTR, weights)
        return estimator

    @staticmethod
    def raw(estimator, arrays: dict, task=None) -> np.ndarray:
        """Distances of each image's code to every centre, float64 [N, k]."""
        return np.asarray(estimator.transform(codes(estimator, arrays)), dtype=np.float64)

    @staticmethod
    def save(estimator, run_dir: Path) -> None:
        save_skops(estimator, run_dir)

    @staticmethod
    def load(run_dir: Path):
        return load_skops(run_dir, ())

    @staticmethod
    def export_core(estimator, input_shapes: dict, min_opset: int):
        """'features' (the flattened pixels) -> the encoder -> K-Means' distances (models/kmeans.onnx_core, its input
        renamed to the encoder's output)."""
        from onnx import helper, numpy_helper

        w1, b1, w2, b2 = getattr(estimator, ENCODER_ATTR)
        model = onnx_core(estimator, {"numeric": w2.shape[1]}, min_opset)  # K-Means on a 'features' of code width
        g = model.graph
        for node in g.node:
            node.input[:] = [CODES if i == ONNX_INPUT else i for i in node.input]
        g.initializer.extend(numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)
                             for a, name in ((w1, "encoder/w1"), (b1, "encoder/b1"), (w2, "encoder/w2"), (b2, "encoder/b2")))
        encoder = [helper.make_node("Gemm", [ONNX_INPUT, "encoder/w1", "encoder/b1"], ["encoder/hidden"], name="encoder/gemm1"),
                   helper.make_node("Relu", ["encoder/hidden"], ["encoder/relu"], name="encoder/relu"),
                   helper.make_node("Gemm", ["encoder/relu", "encoder/w2", "encoder/b2"], [CODES], name="encoder/gemm2")]
        for i, node in enumerate(encoder):
            g.node.insert(i, node)
        g.input[0].type.tensor_type.shape.dim[1].dim_value = w1.shape[0]  # the pixels' width, not the codes'
        return model
