"""Unsupervised anomaly detectors from scikit-learn (IsolationForest, LocalOutlierFactor), saved with skops (no pickle).

Both see the encoded inputs as one float matrix (``detector_matrix``): standardized numerics as they are, each
categorical column one-hot (code 0, unseen/missing, is all zeros), standardized date parts, images flattened. Scores
are ``-score_samples``: one float per row, higher = more anomalous. Targets are ignored (``fit(X, y=None)`` as in scikit-learn).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from forgeml.config.base import Strict
from forgeml.core import Learner
from forgeml.models import LEARNERS


class IsolationForestParams(Strict):
    """Isolation Forest (Liu et al. 2008): rows that random splits isolate in few steps are anomalous."""

    name: Literal["isolation_forest"] = "isolation_forest"
    n_estimators: int = Field(200, gt=0, description="number of trees")
    max_samples: Literal["auto"] | Annotated[int, Field(gt=0)] | Annotated[float, Field(gt=0, le=1)] = Field(
        "auto", description="rows drawn per tree: 'auto' (min(256, n)), a count, or a fraction in (0, 1]")
    contamination: float | None = Field(
        None, gt=0, le=0.5, description="expected share of anomalies; only moves sklearn's own threshold (offset_), "
                                        "not the scores; None = sklearn's 'auto'")


class LOFParams(Strict):
    """Local Outlier Factor (Breunig et al. 2000) in novelty mode: a row whose local density is low compared with
    that of its neighbours in the training rows is anomalous."""

    name: Literal["lof"] = "lof"
    n_neighbors: int = Field(20, gt=0, description="neighbours that define the local density")

MODEL_FILE = "model.skops"
ONNX_INPUT, ONNX_OUTPUT = "features", "score"
LAYOUT_ATTR = "forgeml_layout_"  # stored on the fitted estimator: which columns the matrix was built from


# --------------------------------------------------------------------------------------------- inputs
def layout(shapes: dict) -> dict:
    """The part of Preprocessor.input_shapes() the detector matrix depends on (JSON-able)."""
    image = shapes.get("image")
    return {"numeric": int(shapes.get("numeric") or 0),
            "categorical": [int(c) for c in shapes.get("categorical") or []],
            "datetime": int(shapes.get("datetime") or 0),
            "image": [int(s) for s in image] if image else None}


def matrix_width(shapes: dict) -> int:
    """D, the number of columns of ``detector_matrix`` for these shapes."""
    lay = layout(shapes)
    return (lay["numeric"] + sum(c - 1 for c in lay["categorical"]) + lay.get("datetime", 0)
            + (int(np.prod(lay["image"])) if lay["image"] else 0))


def detector_matrix(arrays: dict[str, np.ndarray], shapes: dict) -> np.ndarray:
    """Encoded inputs -> float64 [N, D]: numerics as they are, one-hot categoricals (``shapes["categorical"][j]``
    = levels + 1 codes; code c -> column c - 1 of its block, code 0 -> all zeros), images flattened (C, H, W order)."""
    lay = layout(shapes)
    n = len(next(iter(arrays.values())))
    parts = []
    if lay["numeric"]:
        parts.append(np.asarray(arrays["numeric"], dtype=np.float64).reshape(n, lay["numeric"]))
    for j, card in enumerate(lay["categorical"]):
        codes = np.asarray(arrays["categorical"][:, j], dtype=np.int64)
        block = np.zeros((n, card - 1), dtype=np.float64)
        ok = (codes >= 1) & (codes < card)  # codes beyond the fitted levels count as unseen
        block[np.nonzero(ok)[0], codes[ok] - 1] = 1.0
        parts.append(block)
    if lay.get("datetime"):  # standardized date parts, after the categoricals as the feature types' order has them
        parts.append(np.asarray(arrays["datetime"], dtype=np.float64).reshape(n, lay["datetime"]))
    if lay["image"]:
        parts.append(np.asarray(arrays["image"], dtype=np.float64).reshape(n, -1))
    if not parts:
        raise ValueError("detector_matrix: no numeric, categorical or image inputs to score")
    return np.concatenate(parts, axis=1)


def shapes_from_arrays(*splits: dict) -> dict:
    """Shapes inferred from encoded arrays when the preprocessor's are not given: categorical sizes from the largest
    code seen (the preprocessor fits its levels on the training split, so every level occurs there)."""
    first = splits[0]
    shapes: dict = {"numeric": first["numeric"].shape[1] if "numeric" in first else 0, "categorical": [], "image": None,
                    "datetime": first["datetime"].shape[1] if "datetime" in first else 0}
    if "categorical" in first:
        top = np.max([s["categorical"].max(axis=0) for s in splits if len(s["categorical"])], axis=0)
        shapes["categorical"] = [int(m) + 1 for m in top]
    if "image" in first:
        shapes["image"] = list(first["image"].shape[1:])
    return shapes


# --------------------------------------------------------------------------------------------- shared learner code
def _fit(estimator, train: dict, val: dict, shapes: dict | None):
    shapes = layout(shapes) if shapes else shapes_from_arrays(train, *([val] if val else []))
    estimator.fit(detector_matrix(train, shapes))
    setattr(estimator, LAYOUT_ATTR, shapes)
    return estimator


def scores(estimator, arrays: dict) -> np.ndarray:
    """Anomaly scores, higher = more anomalous (``-score_samples``), float64 [N]."""
    x = detector_matrix(arrays, getattr(estimator, LAYOUT_ATTR))
    return -np.asarray(estimator.score_samples(x), dtype=np.float64)


def save_skops(estimator, run_dir: Path) -> None:
    import skops.io as sio

    from forgeml.artifacts import atomic_write_bytes

    atomic_write_bytes(Path(run_dir) / MODEL_FILE, sio.dumps(estimator))


def load_skops(run_dir: Path, trusted: tuple[str, ...]):
    """Load with skops, trusting only the listed types beyond skops' defaults (numpy, builtins, sklearn estimators)."""
    import skops.io as sio

    from forgeml.errors import RunError

    path = Path(run_dir) / MODEL_FILE
    extra = [t for t in sio.get_untrusted_types(file=path) if t not in trusted]
    if extra:
        raise RunError(f"{path} holds types forgeml does not load ({', '.join(extra)}); it was not written by "
                       "forgeml's detectors, or by a newer scikit-learn: retrain the run")
    return sio.load(path, trusted=list(trusted))


def onnx_core(estimator, input_shapes: dict, min_opset: int):
    """The detector as ONNX: input 'features' float [N, D], output 'score' float [N, 1] = -score_samples."""
    from onnx import TensorProto, helper

    width = matrix_width(input_shapes)
    if width != estimator.n_features_in_:
        from forgeml.errors import ConfigError

        raise ConfigError(f"input_shapes give {width} detector columns, but the detector was fitted on "
                          f"{estimator.n_features_in_}")
    opset = max(min_opset, 17)
    if hasattr(estimator, "estimators_"):  # IsolationForest
        nodes, inits = isolation_forest_nodes(estimator, ONNX_INPUT, ONNX_OUTPUT)
        graph = helper.make_graph(nodes, "isolation_forest", [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, [None, width])],
                                  [helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, [None, 1])], inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(ML_DOMAIN, 3)],
                                 producer_name="forgeml")
    return lof_core(estimator, width, opset)


ML_DOMAIN = "ai.onnx.ml"


def average_path_length(n) -> np.ndarray:
    """c(n): the average path length of an unsuccessful search in a binary search tree of n rows (Liu et al. 2008),
    as scikit-learn computes it."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def isolation_forest_nodes(estimator, input_name: str, output_name: str):
    """IsolationForest as one TreeEnsembleRegressor (all trees, features mapped back to the input's columns) whose
    leaves hold their path length (depth + c(rows in the leaf)), then score = 2 ** (-mean path / c(max_samples)).

    Written directly rather than with skl2onnx, whose converter makes ~6 nodes per tree and takes minutes for 200 trees.
    Thresholds: scikit-learn compares float32 inputs with float64 thresholds; ``x <= t`` is exactly ``x <= the largest
    float32 <= t`` for float32 x, so that is what the graph stores (rounding to nearest could flip a row)."""
    from onnx import helper, numpy_helper

    attrs: dict[str, list] = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes",
                                              "nodes_values", "nodes_truenodeids", "nodes_falsenodeids",
                                              "target_treeids", "target_nodeids", "target_ids", "target_weights")}
    for tid, (est, features) in enumerate(zip(estimator.estimators_, estimator.estimators_features_)):
        tree = est.tree_
        left, right = tree.children_left, tree.children_right
        depth = np.zeros(tree.node_count, dtype=np.int64)
        for i in range(tree.node_count):  # children always come after their parent
            if left[i] != -1:
                depth[left[i]] = depth[right[i]] = depth[i] + 1
        path = depth + average_path_length(tree.n_node_samples)
        threshold = tree.threshold.astype(np.float32)
        high = threshold.astype(np.float64) > tree.threshold
        threshold[high] = np.nextafter(threshold[high], np.float32(-np.inf))
        for i in range(tree.node_count):
            leaf = left[i] == -1
            attrs["nodes_treeids"].append(tid)
            attrs["nodes_nodeids"].append(i)
            attrs["nodes_featureids"].append(0 if leaf else int(features[tree.feature[i]]))
            attrs["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
            attrs["nodes_values"].append(0.0 if leaf else float(threshold[i]))
            attrs["nodes_truenodeids"].append(0 if leaf else int(left[i]))
            attrs["nodes_falsenodeids"].append(0 if leaf else int(right[i]))
            if leaf:
                attrs["target_treeids"].append(tid)
                attrs["target_nodeids"].append(i)
                attrs["target_ids"].append(0)
                attrs["target_weights"].append(float(path[i]))
    denominator = len(estimator.estimators_) * float(average_path_length([estimator.max_samples_])[0])
    # 2 ** (-sum / denominator) = exp(sum * -ln 2 / denominator); sklearn gives 1 where the denominator is 0
    factor = -np.log(2.0) / denominator if denominator else 0.0
    inits = [numpy_helper.from_array(np.asarray([factor], dtype=np.float32), "iforest/factor")]
    nodes = [helper.make_node("TreeEnsembleRegressor", [input_name], ["iforest/path_sum"], domain=ML_DOMAIN,
                              name="iforest/trees", n_targets=1, aggregate_function="SUM", post_transform="NONE", **attrs),
             helper.make_node("Mul", ["iforest/path_sum", "iforest/factor"], ["iforest/log_score"], name="iforest/mul"),
             helper.make_node("Exp", ["iforest/log_score"], [output_name], name="iforest/exp")]
    return nodes, inits


def lof_core(estimator, width: int, opset: int):
    """LocalOutlierFactor(novelty=True) via skl2onnx, which gives 'label' and 'scores' (= decision_function =
    score_samples - offset_); one Sub node turns that into (-offset_) - scores."""
    from forgeml.errors import require

    require("skl2onnx", "export", "exporting a LocalOutlierFactor detector")
    from onnx import TensorProto, helper, numpy_helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    model = convert_sklearn(estimator, initial_types=[(ONNX_INPUT, FloatTensorType([None, width]))],
                            target_opset={"": opset, ML_DOMAIN: 3})
    graph = model.graph
    decision = next(o.name for o in graph.output if o.name == "scores")
    graph.initializer.append(numpy_helper.from_array(np.asarray([-estimator.offset_], dtype=np.float32), "post/neg_offset"))
    graph.node.append(helper.make_node("Sub", ["post/neg_offset", decision], [ONNX_OUTPUT], name="post/anomaly_score"))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, [None, 1]))
    return model


# --------------------------------------------------------------------------------------------- the learners
class SklearnDetector(Learner):
    """What the scikit-learn detectors share: scores from the detector matrix, skops files (only the ``trusted``
    types beyond skops' defaults load), the ONNX core."""

    file = MODEL_FILE
    trusted: tuple = ()

    @staticmethod
    def raw(estimator, arrays: dict, task=None) -> np.ndarray:
        return scores(estimator, arrays)

    @staticmethod
    def save(estimator, run_dir: Path) -> None:
        save_skops(estimator, run_dir)

    @classmethod
    def load(cls, run_dir: Path):
        return load_skops(run_dir, cls.trusted)

    @staticmethod
    def export_core(estimator, input_shapes: dict, min_opset: int):
        return onnx_core(estimator, input_shapes, min_opset)


@LEARNERS.register("isolation_forest", tags={"detector", "own_files", "onehot"}, accepts={"numeric", "categorical", "datetime", "image"})
class IsolationForestDetector(SklearnDetector):
    """scikit-learn's IsolationForest on the detector matrix; saved with skops."""

    Params = IsolationForestParams
    trusted = ("sklearn.tree._tree.Tree",)  # beyond skops' defaults (numpy, builtins, the sklearn estimators)

    @staticmethod
    def fit(params, task, train: dict, y_train, val: dict, y_val, seed: int, threads, sample_weight=None,
            shapes: dict | None = None):
        from sklearn.ensemble import IsolationForest

        est = IsolationForest(n_estimators=params.n_estimators, max_samples=params.max_samples,
                              contamination="auto" if params.contamination is None else params.contamination,
                              random_state=seed, n_jobs=threads)
        return _fit(est, train, val, shapes)


@LEARNERS.register("lof", tags={"detector", "own_files", "onehot"}, accepts={"numeric", "categorical", "datetime", "image"})
class LOFDetector(SklearnDetector):
    """scikit-learn's LocalOutlierFactor(novelty=True) on the detector matrix; saved with skops."""

    Params = LOFParams
    # the neighbour index sklearn picks (algorithm="auto") and its Euclidean distance (minkowski, p=2)
    trusted = ("sklearn.neighbors._kd_tree.KDTree", "sklearn.neighbors._ball_tree.BallTree",
               "sklearn.metrics._dist_metrics.EuclideanDistance64")

    @staticmethod
    def fit(params, task, train: dict, y_train, val: dict, y_val, seed: int, threads, sample_weight=None,
            shapes: dict | None = None):
        from sklearn.neighbors import LocalOutlierFactor

        n = len(next(iter(train.values())))
        est = LocalOutlierFactor(n_neighbors=min(params.n_neighbors, max(1, n - 1)), novelty=True, n_jobs=threads)
        return _fit(est, train, val, shapes)
