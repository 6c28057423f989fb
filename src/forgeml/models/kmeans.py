"""K-Means (scikit-learn) on the same float matrix the detectors see (``detectors.detector_matrix``: standardized
numerics, one-hot categoricals, standardized date parts, pixels), saved with skops (no pickle).

Its raw output is the Euclidean distance of each row to every centre, [N, k] (``KMeans.transform``); the task
(forgeml.tasks.clustering) turns that into the cluster (the nearest centre) and the distance to it. With ``k:
auto`` the task chooses k: ``fit`` fits one K-Means per k the task proposes and hands the task each fit's inertia and
labels to choose from (the task's rule, not the learner's)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from forgeml.config.base import Strict
from forgeml.core import Learner
from forgeml.models import LEARNERS
from forgeml.models.detectors import LAYOUT_ATTR, detector_matrix, layout, load_skops, matrix_width, save_skops, \
    shapes_from_arrays

MODEL_FILE = "model.skops"
ONNX_INPUT, ONNX_OUTPUT = "features", "distances"


class KMeansParams(Strict):
    """K-Means (Lloyd's algorithm, k-means++ starts): k centres that minimize the squared distance of rows to their
    nearest centre. k itself is the task's (task.k, --k)."""

    name: Literal["kmeans"] = "kmeans"
    n_init: int = Field(10, gt=0, description="k-means++ restarts per k; the lowest inertia is kept")
    max_iter: int = Field(300, gt=0, description="Lloyd iterations per restart")


def fit_for_task(task, x: np.ndarray, x_val: np.ndarray, n_init: int, max_iter: int, seed: int):
    """One K-Means per k the task proposes on the points ``x``; the task chooses k from each fit's inertia and labels
    (on x and x_val). The chosen fitted KMeans."""
    from sklearn.cluster import KMeans

    fits = {k: KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=seed).fit(x)
            for k in task.k_candidates(len(x))}
    k = task.choose_k({k: {"inertia": float(est.inertia_), "labels": np.concatenate([est.labels_, est.predict(x_val)])}
                       for k, est in fits.items()}, np.concatenate([x, x_val]))
    return fits[k]


def matrix(estimator, arrays: dict) -> np.ndarray:
    return detector_matrix(arrays, getattr(estimator, LAYOUT_ATTR))


@LEARNERS.register("kmeans", tags={"clusterer", "own_files", "onehot"}, accepts={"numeric", "categorical", "datetime", "image"})
class KMeansClusterer(Learner):
    Params = KMeansParams
    file = MODEL_FILE

    @staticmethod
    def fit(params, task, train: dict, y_train, val: dict, y_val, seed: int, threads, sample_weight=None,
            shapes: dict | None = None):
        shapes = layout(shapes) if shapes else shapes_from_arrays(train, *([val] if val else []))
        x = detector_matrix(train, shapes)
        x_val = detector_matrix(val, shapes) if val else x[:0]
        estimator = fit_for_task(task, x, x_val, params.n_init, params.max_iter, seed)
        setattr(estimator, LAYOUT_ATTR, shapes)
        return estimator

    @staticmethod
    def raw(estimator, arrays: dict, task=None) -> np.ndarray:
        """Distances to every centre, float64 [N, k]."""
        return np.asarray(estimator.transform(matrix(estimator, arrays)), dtype=np.float64)

    @staticmethod
    def save(estimator, run_dir: Path) -> None:
        save_skops(estimator, run_dir)

    @staticmethod
    def load(run_dir: Path):
        return load_skops(run_dir, ())

    @staticmethod
    def export_core(estimator, input_shapes: dict, min_opset: int):
        return onnx_core(estimator, input_shapes, min_opset)


def onnx_core(estimator, input_shapes: dict, min_opset: int):
    """Input 'features' float [N, D] -> 'distances' float [N, k]: sqrt(max(|x|^2 - 2 x.c + |c|^2, 0)), as
    KMeans.transform. Sums of squares are MatMuls with a column of ones, so no Reduce* node's axes change with the opset."""
    from onnx import TensorProto, helper, numpy_helper

    width = matrix_width(input_shapes)
    centres = np.asarray(estimator.cluster_centers_, dtype=np.float64)
    if width != centres.shape[1]:
        from forgeml.errors import ConfigError

        raise ConfigError(f"input_shapes give {width} columns, but K-Means was fitted on {centres.shape[1]}")
    f32 = lambda a, name: numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)  # noqa: E731
    inits = [f32(-2.0 * centres.T, "kmeans/minus_2_centres_t"), f32(np.ones((width, 1)), "kmeans/ones"),
             f32((centres ** 2).sum(axis=1)[None, :], "kmeans/centre_norms"), f32([0.0], "kmeans/zero")]
    nodes = [helper.make_node("Mul", [ONNX_INPUT, ONNX_INPUT], ["kmeans/x_squared"], name="kmeans/square"),
             helper.make_node("MatMul", ["kmeans/x_squared", "kmeans/ones"], ["kmeans/x_norms"], name="kmeans/x_norms"),
             helper.make_node("MatMul", [ONNX_INPUT, "kmeans/minus_2_centres_t"], ["kmeans/cross"], name="kmeans/cross"),
             helper.make_node("Add", ["kmeans/cross", "kmeans/x_norms"], ["kmeans/partial"], name="kmeans/add_x"),
             helper.make_node("Add", ["kmeans/partial", "kmeans/centre_norms"], ["kmeans/squared"], name="kmeans/add_c"),
             helper.make_node("Max", ["kmeans/squared", "kmeans/zero"], ["kmeans/clamped"], name="kmeans/clamp"),
             helper.make_node("Sqrt", ["kmeans/clamped"], [ONNX_OUTPUT], name="kmeans/sqrt")]
    graph = helper.make_graph(nodes, "kmeans", [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, [None, width])],
                              [helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, [None, len(centres)])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", max(min_opset, 17))], producer_name="forgeml")
