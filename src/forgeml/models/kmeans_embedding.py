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
from forgeml.models.kmeans import MODEL_FILE, ONNX_INPUT, onnx_core

ENCODER_ATTR = "forgeml_encoder_"  # [W1, b1, W2, b2] of the encoder (float32), stored on the fitted KMeans
HIDDEN = 256


class KMeansEmbeddingParams(Strict):
    """K-Means on the codes of an autoencoder trained on the training images."""

    name: Literal["kmeans_embedding"] = "kmeans_embedding"
    code: int = Field(16, ge=2, le=256, description="size of the autoencoder's code (the space K-Means clusters)")
    epochs: int = Field(60, ge=1, description="autoencoder training epochs (Adam, batches of 128)")
    n_init: int = Field(10, gt=0, description="k-means++ restarts per k; the lowest inertia is kept")


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
        from sklearn.cluster import KMeans

        shapes = layout(shapes) if shapes else shapes_from_arrays(train, *([val] if val else []))
        x = detector_matrix(train, shapes).astype(np.float32)
        weights = train_autoencoder(x, params.code, params.epochs, seed)
        z = encode(weights, x).astype(np.float64)
        z_val = encode(weights, detector_matrix(val, shapes).astype(np.float32)).astype(np.float64) if val else z[:0]
        fits = {k: KMeans(n_clusters=k, n_init=params.n_init, random_state=seed).fit(z) for k in task.k_candidates(len(z))}
        k = task.choose_k({k: {"inertia": float(est.inertia_), "labels": np.concatenate([est.labels_, est.predict(z_val)])}
                           for k, est in fits.items()}, np.concatenate([z, z_val]))
        estimator = fits[k]
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
        """'features' (the flattened pixels) -> the encoder -> K-Means' distances (models/kmeans.onnx_core)."""
        from onnx import TensorProto, helper, numpy_helper

        w1, b1, w2, b2 = getattr(estimator, ENCODER_ATTR)
        core = onnx_core(estimator, {"numeric": w2.shape[1]}, min_opset)  # K-Means on a 'features' of code width
        g = core.graph
        inits = [numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)
                 for a, name in ((w1, "encoder/w1"), (b1, "encoder/b1"), (w2, "encoder/w2"), (b2, "encoder/b2"))]
        nodes = [helper.make_node("Gemm", ["pixels", "encoder/w1", "encoder/b1"], ["encoder/hidden"], name="encoder/gemm1"),
                 helper.make_node("Relu", ["encoder/hidden"], ["encoder/relu"], name="encoder/relu"),
                 helper.make_node("Gemm", ["encoder/relu", "encoder/w2", "encoder/b2"], [ONNX_INPUT], name="encoder/gemm2")]
        graph = helper.make_graph(nodes + list(g.node), "kmeans_embedding",
                                  [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [None, w1.shape[0]])],
                                  list(g.output), inits + list(g.initializer))
        model = helper.make_model(graph, opset_imports=list(core.opset_import), producer_name="forgeml")
        return _renamed_input(model, ONNX_INPUT)


def _renamed_input(model, name: str):
    """The graph's input named ``name`` (what the export's wrapper feeds, as for kmeans): 'pixels' -> 'features'."""
    g = model.graph
    internal = "encoder/codes"
    for node in g.node:  # the encoder's output ('features') becomes internal; its input takes the name 'features'
        node.input[:] = [internal if i == name else (name if i == "pixels" else i) for i in node.input]
        node.output[:] = [internal if o == name else o for o in node.output]
    g.input[0].name = name
    return model
