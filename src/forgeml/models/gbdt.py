"""LightGBM gradient-boosted trees for tables, saved as LightGBM's own text model (no pickle)."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from forgeml.config.base import Strict
from forgeml.core import Learner
from forgeml.models import LEARNERS


class LightGBMParams(Strict):
    """Tables: gradient-boosted trees (LightGBM); also the strong baseline beside every table model."""

    name: Literal["lightgbm"] = "lightgbm"
    n_estimators: int = Field(500, gt=0, description="upper bound; early stopping on the validation split picks the number")
    learning_rate: float = Field(0.05, gt=0)
    num_leaves: int = Field(31, gt=1)
    min_child_samples: int = Field(20, gt=0)
    extra_trees: bool = Field(False, description="random split thresholds (extremely randomized trees): more diverse, "
                                                 "less fitted trees")
    feature_fraction: float = Field(1.0, gt=0, le=1, description="fraction of the columns each tree may split on")

    # forgeml tune's default space (config key -> range or choices); it holds the defaults, so the study measures them
    search_space: ClassVar[dict] = {
        "model.learning_rate": {"low": 0.01, "high": 0.3, "log": True},
        "model.num_leaves": {"low": 7, "high": 127, "log": True},
        "model.min_child_samples": {"low": 5, "high": 100, "log": True},
    }


MODEL_FILE = "model.lightgbm.txt"


TABLE_KEYS = ("numeric", "categorical", "datetime")  # the model inputs the trees take, in the feature types' order


def feature_matrix(arrays: dict[str, np.ndarray]) -> np.ndarray:
    parts = [arrays[k].astype(np.float64) for k in TABLE_KEYS if k in arrays]  # as the ONNX graph's flat() order
    return np.concatenate(parts, axis=1)


def categorical_indices(arrays: dict[str, np.ndarray]) -> list[int]:
    n_num = arrays["numeric"].shape[1] if "numeric" in arrays else 0
    n_cat = arrays["categorical"].shape[1] if "categorical" in arrays else 0
    return list(range(n_num, n_num + n_cat))


ROUNDS_PER_REPORT = 10  # on_epoch: one report per this many boosting rounds


def fit_matrix(params, task, x_train, y_train, x_val, y_val, seed: int, threads, categorical=(), sample_weight=None,
               on_epoch=None):
    """Boost on a dense or sparse matrix; the validation split picks the number of trees (early stopping).
    ``on_epoch(logs)``, if given, gets the validation loss every ROUNDS_PER_REPORT rounds as an epoch of a network
    would (``{"epoch": k, "val_loss": ..., "round": r}``): forgeml tune's pruner reads it, and may stop the fit by
    raising."""
    import lightgbm as lgb

    if "labels" in task.tags:
        k = task.out_dim
        objective = {"objective": "binary"} if k == 2 else {"objective": "multiclass", "num_class": k}
    else:
        objective = {"objective": "regression"}
    booster_params = {
        **objective, "learning_rate": params.learning_rate, "num_leaves": params.num_leaves,
        "min_child_samples": params.min_child_samples, "extra_trees": params.extra_trees,
        "feature_fraction": params.feature_fraction, "seed": seed, "verbose": -1, "num_threads": threads or 0,
    }
    cats = list(categorical) or "auto"
    train = lgb.Dataset(x_train, y_train, weight=sample_weight, categorical_feature=cats, free_raw_data=True)
    val = lgb.Dataset(x_val, y_val, reference=train, categorical_feature=cats)
    callbacks = [lgb.early_stopping(30, verbose=False)]
    if on_epoch is not None:
        def report(env) -> None:
            if (env.iteration + 1) % ROUNDS_PER_REPORT == 0 and env.evaluation_result_list:
                _, _, loss, _ = env.evaluation_result_list[0]  # the objective's own loss (logloss, l2) on validation
                on_epoch({"epoch": env.iteration // ROUNDS_PER_REPORT, "val_loss": float(loss), "round": env.iteration + 1})

        callbacks.append(report)
    return lgb.train(booster_params, train, num_boost_round=params.n_estimators, valid_sets=[val], callbacks=callbacks)


def fit(params, task, train: dict, y_train: np.ndarray, val: dict, y_val: np.ndarray, seed: int, threads: int | None,
        sample_weight: np.ndarray | None = None, on_epoch=None):
    return fit_matrix(params, task, feature_matrix(train), y_train, feature_matrix(val), y_val, seed, threads,
                      categorical_indices(train), sample_weight, on_epoch)


def as_logits(raw, task) -> np.ndarray:
    """A booster's raw scores in the form the torch models give: logits [N, k] (a binary margin becomes [0, margin])
    for classification, standardized values otherwise."""
    raw = np.asarray(raw, dtype=np.float64)
    if "labels" in task.tags:
        raw = raw.reshape(len(raw), -1)
        if raw.shape[1] == 1:  # binary: one margin -> two logits
            raw = np.concatenate([np.zeros_like(raw), raw], axis=1)
    return raw


def feature_width(input_shapes: dict) -> int:
    """Columns of the trees' one float matrix (feature_matrix): numerics, categorical codes, date parts."""
    return int(input_shapes.get("numeric") or 0) + len(input_shapes.get("categorical") or []) + \
        int(input_shapes.get("datetime") or 0)


def raw_matrix_outputs(booster, x, task) -> np.ndarray:
    """Outputs in the same form the torch models give: logits (classification) or standardized values."""
    return as_logits(booster.predict(x, raw_score=True, num_iteration=booster.best_iteration or None), task)


def raw_outputs(booster, arrays: dict, task) -> np.ndarray:
    return raw_matrix_outputs(booster, feature_matrix(arrays), task)


def save(booster, run_dir: Path) -> None:
    from forgeml.artifacts import write_text

    write_text(run_dir / MODEL_FILE, booster.model_to_string(num_iteration=booster.best_iteration or None))


def load(run_dir: Path):
    import lightgbm as lgb

    return lgb.Booster(model_str=(run_dir / MODEL_FILE).read_text())


def onnx_core(booster, n_features: int, min_opset: int):
    """The booster as an ONNX model (onnxmltools), input 'features' [N, n_features], raised to ``min_opset``."""
    from forgeml.errors import require

    onnxmltools = require("onnxmltools", "export", "exporting a LightGBM model")
    from onnx import version_converter
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = onnxmltools.convert_lightgbm(booster, initial_types=[("features", FloatTensorType([None, n_features]))],
                                         zipmap=False, target_opset=15)
    _exact_thresholds(model, booster)
    default = next(o for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return version_converter.convert_version(model, min_opset) if default.version < min_opset else model


def _exact_thresholds(model, booster) -> None:
    """ONNX tree thresholds are float32, LightGBM's are float64. Rounded to nearest, a threshold can land on a feature
    value and send that row the other way. For float32 inputs, ``x <= t`` is exactly ``x <= the largest float32 <= t``."""
    from onnx import helper

    originals: dict[tuple[int, float], float] = {}

    def collect(node):
        if "split_index" in node:
            if node["decision_type"] == "<=":
                t = float(node["threshold"])
                originals[(node["split_feature"], float(np.float32(t)))] = t
            collect(node["left_child"])
            collect(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        collect(tree["tree_structure"])
    for node in model.graph.node:
        if not node.op_type.startswith("TreeEnsemble"):
            continue
        attrs = {a.name: a for a in node.attribute}
        modes, features, values = attrs["nodes_modes"].strings, attrs["nodes_featureids"].ints, attrs["nodes_values"].floats
        exact = []
        for mode, f, v in zip(modes, features, values):
            t = originals.get((f, float(v))) if mode == b"BRANCH_LEQ" else None
            if t is not None and float(np.float32(t)) > t:
                v = float(np.nextafter(np.float32(t), np.float32(-np.inf)))
            exact.append(v)
        node.attribute.remove(attrs["nodes_values"])
        node.attribute.append(helper.make_attribute("nodes_values", exact))


@LEARNERS.register("lightgbm", tags={"trees", "sample_weights", "own_files", "baseline:table", "ensemble_member",
                                     "reports_rounds"}, accepts={"numeric", "categorical", "datetime"})
class LightGBM(Learner):
    """Gradient-boosted trees; trained by LightGBM itself (not forgeml's loop), saved in its text format."""

    Params = LightGBMParams
    file = MODEL_FILE

    @staticmethod
    def fit(params, task, train: dict, y_train, val: dict, y_val, seed: int, threads, sample_weight=None, on_epoch=None):
        return fit(params, task, train, y_train, val, y_val, seed, threads, sample_weight, on_epoch)

    @staticmethod
    def raw(booster, arrays: dict, task) -> np.ndarray:
        return raw_outputs(booster, arrays, task)

    @staticmethod
    def save(booster, run_dir: Path) -> None:
        save(booster, run_dir)

    @staticmethod
    def load(run_dir: Path):
        return load(run_dir)

    @staticmethod
    def export_core(booster, input_shapes: dict, min_opset: int):
        return onnx_core(booster, feature_width(input_shapes), min_opset)
