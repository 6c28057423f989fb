"""LightGBM on a table's columns and a TF-IDF of its text: the baseline of tables with text columns, servable.

The table part is the tree matrix of ``lightgbm`` (numerics, categorical codes split as categories, date parts); the
text part is the TF-IDF of the text type's word ids that ``tfidf_linear`` computes (unigrams and bigrams in at least
``min_df`` training rows, the ``max_features`` most frequent, sublinear tf, smoothed idf, L2-normalized rows). LightGBM
boosts on both side by side (a sparse matrix); the validation split picks the number of trees. The ONNX core computes
the TF-IDF with ``TfIdfVectorizer`` and concatenates it after the table's columns, before the trees. Under
``model: auto`` on a table with text it is a candidate beside the MLP. Saved as one ``.npz``: the vocabulary, the idf
and LightGBM's own text model (no pickle)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from forgeml.core import Learner
from forgeml.models import LEARNERS, gbdt
from forgeml.models.linear import load_arrays, save_arrays
from forgeml.models.tfidf_linear import TfidfLinear, counts, fit_vocabulary, tfidf, tfidf_nodes

MODEL_FILE = "model.lightgbm_tfidf.npz"
TOKENS = "tokens"  # the text type's word ids (the words tokenizer)


class LightGBMTfidfParams(gbdt.LightGBMParams):
    """Tables with text columns: LightGBM on the columns and a TF-IDF of the text; also their baseline."""

    name: Literal["lightgbm_tfidf"] = "lightgbm_tfidf"  # type: ignore[assignment]
    min_df: int = Field(2, gt=0, description="an n-gram must occur in at least this many training rows")
    max_features: int = Field(5000, gt=0, description="the most frequent n-grams kept")
    sublinear_tf: bool = Field(True, description="1 + ln(count) instead of the count")


@dataclass
class LightGBMTfidfModel:
    booster: object
    keys: np.ndarray  # the n-gram vocabulary (tfidf_linear's keys)
    idf: np.ndarray
    sublinear: bool
    n_table: int  # columns of the table part, before the TF-IDF's

    def matrix(self, arrays: dict):
        """Encoded inputs -> [N, n_table + F] CSR: the table's tree columns, then the TF-IDF."""
        import scipy.sparse as sp

        text = tfidf(counts(arrays[TOKENS], self.keys), self.idf, self.sublinear)
        if not self.n_table:
            return text.tocsr()
        return sp.hstack([sp.csr_matrix(gbdt.feature_matrix(arrays)), text]).tocsr()


def table_width(arrays: dict) -> int:
    return sum(arrays[k].shape[1] for k in gbdt.TABLE_KEYS if k in arrays)


@LEARNERS.register("lightgbm_tfidf", tags={"trees", "sample_weights", "own_files", "baseline:table+tfidf"},
                   accepts={"numeric", "categorical", "datetime", "text"})
class LightGBMTfidf(Learner):
    """LightGBM on the table's columns beside a TF-IDF of the word ids; fitted by LightGBM, saved as numpy arrays."""

    Params = LightGBMTfidfParams
    file = MODEL_FILE

    tokenizer_for = TfidfLinear.tokenizer_for  # the word ids, as tfidf_linear reads them

    @staticmethod
    def fit(params, task, train: dict, y_train, val: dict, y_val, seed: int, threads, sample_weight=None):
        keys, idf = fit_vocabulary(train[TOKENS], params.min_df, params.max_features)
        model = LightGBMTfidfModel(None, keys, idf, params.sublinear_tf, table_width(train))
        cats = gbdt.categorical_indices(train) if model.n_table else []
        model.booster = gbdt.fit_matrix(params, task, model.matrix(train), y_train, model.matrix(val), y_val, seed,
                                        threads, cats, sample_weight)
        return model

    @staticmethod
    def raw(model, arrays: dict, task) -> np.ndarray:
        return gbdt.raw_matrix_outputs(model.booster, model.matrix(arrays), task)

    @staticmethod
    def save(model, run_dir: Path) -> None:
        booster = model.booster.model_to_string(num_iteration=model.booster.best_iteration or None)
        save_arrays(Path(run_dir) / MODEL_FILE, {"keys": model.keys, "idf": model.idf,
                                                 "booster": np.frombuffer(booster.encode(), dtype=np.uint8)},
                    {"sublinear": model.sublinear, "n_table": model.n_table, "format": 1})

    @staticmethod
    def load(run_dir: Path):
        import lightgbm as lgb

        a, meta = load_arrays(Path(run_dir) / MODEL_FILE)
        booster = lgb.Booster(model_str=a["booster"].tobytes().decode())
        return LightGBMTfidfModel(booster, a["keys"], a["idf"], meta["sublinear"], meta["n_table"])

    @staticmethod
    def export_core(model, input_shapes: dict, min_opset: int):
        """'features' [N, n_table] (the table's flat part; absent without table columns) and the token ids [N, L] ->
        the TF-IDF nodes, joined after the table's columns -> LightGBM's trees (onnxmltools)."""
        from onnx import TensorProto, helper

        core = gbdt.onnx_core(model.booster, model.n_table + len(model.keys), min_opset)
        nodes, inits, x = tfidf_nodes(TOKENS, model.keys, model.idf, model.sublinear)
        inputs = [helper.make_tensor_value_info(TOKENS, TensorProto.INT64, ["batch", "length"])]
        joined = x
        if model.n_table:
            joined = "core/joined"
            nodes.append(helper.make_node("Concat", ["features", x], [joined], name="core/join", axis=1))
            inputs.insert(0, helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", model.n_table]))
        graph = core.graph
        for node in graph.node:  # the trees read the joined matrix where they read their 'features' input
            node.input[:] = [joined if i == "features" else i for i in node.input]
        trees = list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes + trees)
        del graph.input[:]
        graph.input.extend(inputs)
        graph.initializer.extend(inits)
        return core
