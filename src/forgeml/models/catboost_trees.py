"""CatBoost gradient-boosted (oblivious) trees for tables, saved in CatBoost's own binary format (no pickle).

Categorical columns reach CatBoost as their level codes, declared categorical, so it builds its ordered target
statistics on them (``native_categoricals``, the default). CatBoost's ONNX export takes numeric features only: a model
trained that way cannot be exported, and export says so; ``native_categoricals: false`` gives CatBoost the codes as
numbers, which exports. Needs the ``tables`` extra (pip install 'forgeml[tables]')."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from forgeml.config.base import Strict
from forgeml.core import Learner
from forgeml.errors import RunError, require
from forgeml.models import LEARNERS
from forgeml.models.gbdt import as_logits, categorical_indices, feature_matrix

MODEL_FILE = "model.catboost.cbm"
EARLY_STOP = 50  # rounds without a better validation loss


class CatBoostParams(Strict):
    """Tables: CatBoost's gradient-boosted oblivious trees, with its own handling of categorical columns."""

    name: Literal["catboost"] = "catboost"
    iterations: int = Field(1000, gt=0, description="upper bound; early stopping on the validation split picks the number")
    learning_rate: float = Field(0.08, gt=0)
    depth: int = Field(6, ge=1, le=16)
    l2_leaf_reg: float = Field(3.0, ge=0)
    ordered: bool = Field(False, description="CatBoost's ordered boosting (its default on small tables): less "
                                             "overfitting, several times slower")
    native_categoricals: bool = Field(True, description="categorical columns as CatBoost categoricals (target statistics); "
                                                        "false: as their codes, which ONNX export needs")

    search_space: ClassVar[dict] = {
        "model.learning_rate": {"low": 0.01, "high": 0.3, "log": True},
        "model.depth": {"low": 4, "high": 10},
        "model.l2_leaf_reg": {"low": 1.0, "high": 10.0, "log": True},
    }

    @model_validator(mode="after")
    def _installed(self):  # refused with the config, before anything is read or written
        if importlib.util.find_spec("catboost") is None:
            raise ValueError("model catboost needs the 'catboost' package: pip install 'forgeml[tables]'")
        return self


def _catboost():
    return require("catboost", "tables", "the catboost model")


def _pool(arrays: dict, y=None, weight=None, native: bool = True):
    """A CatBoost Pool: categorical codes as int columns when native (CatBoost refuses floats there)."""
    import pandas as pd

    cb = _catboost()
    x = feature_matrix(arrays)
    cats = categorical_indices(arrays) if native else []
    frame = pd.DataFrame(x)
    for j in cats:
        frame[j] = frame[j].astype(np.int64)
    return cb.Pool(frame, label=y, weight=weight, cat_features=cats or None)


@LEARNERS.register("catboost", tags={"trees", "sample_weights", "own_files", "ensemble_member"},
                   accepts={"numeric", "categorical", "datetime"})
class CatBoostTrees(Learner):
    """CatBoost, trained by CatBoost itself (not forgeml's loop)."""

    Params = CatBoostParams
    file = MODEL_FILE

    @staticmethod
    def fit(params, task, train: dict, y_train, val: dict, y_val, seed: int, threads, sample_weight=None):
        cb = _catboost()
        if "labels" in task.tags:
            loss = "Logloss" if task.out_dim == 2 else "MultiClass"
        else:
            loss = "RMSE"
        options = {"loss_function": loss, "iterations": params.iterations, "depth": params.depth,
                   "l2_leaf_reg": params.l2_leaf_reg, "random_seed": seed, "thread_count": threads or -1,
                   "learning_rate": params.learning_rate, "boosting_type": "Ordered" if params.ordered else "Plain",
                   "verbose": False, "allow_writing_files": False, "od_type": "Iter", "od_wait": EARLY_STOP}
        if "labels" in task.tags:  # every class, even one a bagging fold lacks, keeps its output column
            options["class_names"] = list(range(task.out_dim))
        model = cb.CatBoost(options)
        native = params.native_categoricals
        model.fit(_pool(train, y_train, sample_weight, native), eval_set=_pool(val, y_val, native=native),
                  use_best_model=True)
        return model

    @staticmethod
    def raw(model, arrays: dict, task) -> np.ndarray:
        """Logits (classification; binary: [0, margin]) or standardized values, as the other learners give."""
        native = bool(model.get_cat_feature_indices())
        return as_logits(model.predict(_pool(arrays, native=native), prediction_type="RawFormulaVal"), task)

    @staticmethod
    def save(model, run_dir: Path) -> None:
        from forgeml.artifacts import atomic_write_bytes

        tmp = run_dir / (MODEL_FILE + ".tmp")
        model.save_model(str(tmp), format="cbm")
        atomic_write_bytes(run_dir / MODEL_FILE, tmp.read_bytes())
        tmp.unlink()

    @staticmethod
    def load(run_dir: Path):
        model = _catboost().CatBoost()
        model.load_model(str(run_dir / MODEL_FILE), format="cbm")
        return model

    @staticmethod
    def export_core(model, input_shapes: dict, min_opset: int):
        """CatBoost's own ONNX-ML export, its ZipMap removed: input 'features' [N, F], output 'probabilities' [N, k]
        (classification) or the value [N, 1]."""
        import tempfile

        import onnx
        from onnx import version_converter

        if model.get_cat_feature_indices():
            raise RunError("this catboost model was trained with native categorical columns, which CatBoost's ONNX "
                           "export does not support; train it with model.native_categoricals: false to export it")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "catboost.onnx"
            model.save_model(str(path), format="onnx")
            core = onnx.load(str(path))
        graph = core.graph
        zipmaps = [n for n in graph.node if n.op_type == "ZipMap"]
        for node in zipmaps:  # its input is the [N, k] probability tensor forgeml's graph continues from
            graph.node.remove(node)
        outputs = list(graph.output)
        del graph.output[:]
        if zipmaps:
            probs = zipmaps[0].input[0]
            for node in graph.node:
                node.output[:] = ["probabilities" if o == probs else o for o in node.output]
            graph.output.append(onnx.helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, ["N", None]))
        else:
            graph.output.extend(o for o in outputs if o.name != "label")
        core.ir_version = max(core.ir_version, 8)  # CatBoost writes IR 3, where initializers must be graph inputs
        default = next((o for o in core.opset_import if o.domain in ("", "ai.onnx")), None)
        if default is None:
            core.opset_import.add(domain="", version=min_opset)
        elif default.version < min_opset:
            core = version_converter.convert_version(core, min_opset)
        return core
