"""TF-IDF of word-id n-grams + a linear model (logistic regression for classes, ridge for values): the text baseline,
servable. It reads the text type's token ids (model input ``tokens``, 0 = padding) and computes the TF-IDF itself, the
same way the ONNX core does (``ai.onnx`` TfIdfVectorizer), so the exported graph matches it to float32 precision:

- vocabulary: unigrams and bigrams of ids (none containing the padding id 0) found in at least ``min_df`` training rows,
  the ``max_features`` most frequent (total count; ties by id order), ordered unigrams first, then bigrams, by id;
- weights: sublinear tf (1 + ln count, 0 for an absent n-gram) times smoothed idf (ln((1 + n) / (1 + df)) + 1, as
  scikit-learn's TfidfVectorizer), then each row L2-normalized (an empty row stays 0);
- scikit-learn's LogisticRegression (multinomial; a binary task's one margin becomes two logits) or Ridge on the
  task's standardized target; only its coefficients and intercepts are kept.

Saved as one ``.npz`` of numpy arrays (no pickle: it loads with ``allow_pickle=False``).
"""
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

MODEL_FILE = "model.tfidf_linear.npz"
SHIFT = 32  # a bigram (a, b) is the key a << 32 | b; a unigram's key is its id (ids are below 2**31)


class TfidfLinearParams(Strict):
    """Text: TF-IDF of word and word-pair ids + logistic (classes) or ridge (values) regression; also text's baseline."""

    name: Literal["tfidf_linear"] = "tfidf_linear"
    min_df: int = Field(2, gt=0, description="an n-gram must occur in at least this many training rows")
    max_features: int = Field(50000, gt=0, description="the most frequent n-grams kept")
    sublinear_tf: bool = Field(True, description="1 + ln(count) instead of the count")
    C: float = Field(1.0, gt=0, description="logistic regression: inverse regularization strength")
    alpha: float = Field(1.0, ge=0, description="ridge regression: regularization strength")


@dataclass
class TfidfLinearModel:
    """What predicting needs: the n-gram vocabulary (sorted keys), idf and the linear model (coef [K, F], intercept [K];
    K = 1 for a value), and the model input it reads."""

    keys: np.ndarray
    idf: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    sublinear: bool
    labels: bool
    key: str = "tokens"

    def features(self, ids) -> "object":
        """Rows of token ids -> their L2-normalized TF-IDF rows (scipy CSR, float64)."""
        return tfidf(counts(ids, self.keys), self.idf, self.sublinear)

    def raw(self, ids) -> np.ndarray:
        z = np.asarray(self.features(ids) @ self.coef.T) + self.intercept
        return z if self.labels else z[:, 0]


def ngram_keys(ids) -> tuple[np.ndarray, np.ndarray]:
    """(row, key) of every unigram and bigram in rows of ids; ids <= 0 (padding) start or end none."""
    ids = np.asarray(ids, dtype=np.int64)
    real = ids > 0
    rows_u, cols_u = np.nonzero(real)
    pairs = real[:, :-1] & real[:, 1:]
    rows_b, cols_b = np.nonzero(pairs)
    bigrams = (ids[rows_b, cols_b] << SHIFT) | ids[rows_b, cols_b + 1]
    return np.concatenate([rows_u, rows_b]), np.concatenate([ids[rows_u, cols_u], bigrams])


def counts(ids, vocabulary: np.ndarray):
    """Rows of ids -> [N, F] counts of the vocabulary's n-grams (others are dropped)."""
    import scipy.sparse as sp

    rows, keys = ngram_keys(ids)
    pos = np.searchsorted(vocabulary, keys)
    pos[pos == len(vocabulary)] = 0
    hit = vocabulary[pos] == keys if len(vocabulary) else np.zeros(len(keys), bool)
    x = sp.csr_matrix((np.ones(int(hit.sum())), (rows[hit], pos[hit])), shape=(len(ids), len(vocabulary)))
    x.sum_duplicates()
    return x


def tfidf(x, idf: np.ndarray, sublinear: bool):
    import scipy.sparse as sp

    x = x.astype(np.float64)
    if sublinear:
        x.data = 1.0 + np.log(x.data)
    x = x @ sp.diags(idf)
    norm = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return sp.diags(1.0 / np.maximum(norm, 1e-12)) @ x


def fit_vocabulary(ids, min_df: int, max_features: int) -> tuple[np.ndarray, np.ndarray]:
    """The kept n-gram keys (sorted: unigrams, then bigrams) and their smoothed idf, from the training rows."""
    import scipy.sparse as sp

    from forgeml.errors import DataError

    rows, keys = ngram_keys(ids)
    unique, inverse = np.unique(keys, return_inverse=True)
    x = sp.csr_matrix((np.ones(len(keys)), (rows, inverse)), shape=(len(ids), len(unique)))
    x.sum_duplicates()
    df = np.diff(x.tocsc().indptr)
    total = np.asarray(x.sum(axis=0)).ravel()
    keep = np.nonzero(df >= min_df)[0]
    if not len(keep):
        raise DataError(f"TF-IDF of the text: no word occurs in {min_df}+ training rows; lower model.min_df or add rows")
    keep = keep[np.argsort(-total[keep], kind="stable")[:max_features]]
    keep.sort()
    idf = np.log((1.0 + len(ids)) / (1.0 + df[keep])) + 1.0
    return unique[keep], idf


def input_key(arrays: dict) -> str:
    """The text type's token ids: the words tokenizer's ``tokens`` (MiniLM's ``input_ids`` when the baseline of a
    MiniLM run; [CLS]/[SEP] are then n-grams like the others)."""
    return "tokens" if "tokens" in arrays else "input_ids"


def fit(params, task, train: dict, y_train, seed: int, sample_weight=None) -> TfidfLinearModel:
    key = input_key(train)
    keys, idf = fit_vocabulary(train[key], params.min_df, params.max_features)
    x = tfidf(counts(train[key], keys), idf, params.sublinear_tf)
    coef, intercept = fit_coefficients(task, x, y_train, params.C, params.alpha, seed, sample_weight)
    return TfidfLinearModel(keys, idf, coef, intercept, params.sublinear_tf, "labels" in task.tags, key)


def save(model: TfidfLinearModel, run_dir: Path) -> None:
    meta = {"sublinear": model.sublinear, "labels": model.labels, "key": model.key, "format": 1}
    save_arrays(Path(run_dir) / MODEL_FILE, {"keys": model.keys, "idf": model.idf, "coef": model.coef,
                                             "intercept": model.intercept}, meta)


def load(run_dir: Path) -> TfidfLinearModel:
    a, meta = load_arrays(Path(run_dir) / MODEL_FILE)
    return TfidfLinearModel(a["keys"], a["idf"], a["coef"], a["intercept"], meta["sublinear"], meta["labels"], meta["key"])


def tfidf_nodes(key: str, keys: np.ndarray, idf: np.ndarray, sublinear: bool) -> tuple[list, list, str]:
    """ONNX nodes from token ids [N, L] (int64, the graph tensor ``key``) to their L2-normalized TF-IDF rows [N, F]
    (float), as ``tfidf(counts(ids, keys), idf, sublinear)`` computes them: (nodes, initializers, the output's name)."""
    from onnx import helper, numpy_helper

    unigrams = keys[keys < (1 << SHIFT)]
    bigrams = keys[keys >= (1 << SHIFT)]
    pool = np.concatenate([unigrams, np.stack([bigrams >> SHIFT, bigrams & ((1 << SHIFT) - 1)], axis=1).ravel()])
    f32 = lambda a, name: numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)  # noqa: E731
    inits = [f32(idf, "core/idf"), f32([1.0], "core/one"), f32([1e-12], "core/tiny"),
             numpy_helper.from_array(np.asarray([1], np.int64), "core/axis")]
    nodes = [helper.make_node("TfIdfVectorizer", [key], ["core/tf"], name="core/ngrams", mode="TF",
                              min_gram_length=1, max_gram_length=2 if len(bigrams) else 1, max_skip_count=0,
                              ngram_counts=[0, len(unigrams)] if len(bigrams) else [0],
                              ngram_indexes=list(range(len(keys))), pool_int64s=pool.tolist())]
    tf = "core/tf"
    if sublinear:  # 1 + ln(count) where count > 0: ln(max(count, 1)) + min(count, 1)
        nodes += [helper.make_node("Max", [tf, "core/one"], ["core/tf_at_least_1"], name="core/tf_max"),
                  helper.make_node("Log", ["core/tf_at_least_1"], ["core/tf_log"], name="core/tf_log"),
                  helper.make_node("Min", [tf, "core/one"], ["core/tf_present"], name="core/tf_min"),
                  helper.make_node("Add", ["core/tf_log", "core/tf_present"], ["core/tf_sub"], name="core/tf_sub")]
        tf = "core/tf_sub"
    nodes += [helper.make_node("Mul", [tf, "core/idf"], ["core/w"], name="core/idf_mul"),
              helper.make_node("Mul", ["core/w", "core/w"], ["core/w2"], name="core/square"),
              helper.make_node("ReduceSum", ["core/w2", "core/axis"], ["core/ss"], name="core/sum", keepdims=1),
              helper.make_node("Sqrt", ["core/ss"], ["core/norm"], name="core/sqrt"),
              helper.make_node("Max", ["core/norm", "core/tiny"], ["core/norm_safe"], name="core/norm_max"),
              helper.make_node("Div", ["core/w", "core/norm_safe"], ["core/x"], name="core/l2")]
    return nodes, inits, "core/x"


def onnx_core(model: TfidfLinearModel, min_opset: int):
    """Token ids [N, L] (int64, named as the model input) -> 'probabilities' [N, K] (softmax) or 'standardized' [N, 1]."""
    from onnx import TensorProto, helper

    nodes, inits, x = tfidf_nodes(model.key, model.keys, model.idf, model.sublinear)
    linear, linear_inits, out = onnx_nodes(x, model.coef, model.intercept, model.labels)
    k = model.coef.shape[0]
    graph = helper.make_graph(nodes + linear, "tfidf_linear",
                              [helper.make_tensor_value_info(model.key, TensorProto.INT64, ["batch", "length"])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", k])], inits + linear_inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", min_opset)], ir_version=9)


@LEARNERS.register("tfidf_linear", tags={"own_files", "sample_weights", "token_ids", "baseline:tfidf"}, accepts={"text"})
class TfidfLinear(Learner):
    """TF-IDF + logistic/ridge regression on the words tokenizer's ids; fitted by scikit-learn, saved as numpy arrays.
    ``token_ids``: its ONNX core reads the text type's token ids as the graph's preprocessing leaves them."""

    Params = TfidfLinearParams
    file = MODEL_FILE

    @staticmethod
    def tokenizer_for(params) -> str:
        """The text tokenizer its inputs need (as TorchLearner.tokenizer_for): forgeml's words."""
        return "words"

    @staticmethod
    def fit(params, task, train: dict, y_train, val: dict, y_val, seed: int, threads, sample_weight=None):
        return fit(params, task, train, y_train, seed, sample_weight)

    @staticmethod
    def raw(model, arrays: dict, task=None) -> np.ndarray:
        return model.raw(arrays[model.key])

    @staticmethod
    def save(model, run_dir: Path) -> None:
        save(model, run_dir)

    @staticmethod
    def load(run_dir: Path):
        return load(run_dir)

    @staticmethod
    def export_core(model, input_shapes: dict, min_opset: int):
        return onnx_core(model, min_opset)
