"""What the linear learners share (``tfidf_linear`` on text, ``pixels_linear`` on images): scikit-learn's
LogisticRegression (classes) or Ridge (the task's standardized value) fitted on a feature matrix, kept as plain
coefficients, and the ONNX nodes that apply them (MatMul, Add, then Softmax for classes)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ABSENT_LOGIT = -30.0  # a class absent from the training rows: its logit (zero weights), so its probability is ~0


def fit_coefficients(task, x, y_train, C: float, alpha: float, seed: int, sample_weight=None) -> tuple[np.ndarray, np.ndarray]:
    """(coef [K, F], intercept [K]) of a logistic regression over the task's K classes (a binary fit's one margin
    becomes the logits (0, margin); a class the training rows lack gets ABSENT_LOGIT), or of a ridge regression
    (K = 1)."""
    from sklearn.linear_model import LogisticRegression, Ridge

    n_features = x.shape[1]
    if "labels" in task.tags:
        lr = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(x, y_train, sample_weight=sample_weight)
        k = task.out_dim
        coef, intercept = np.zeros((k, n_features)), np.full(k, ABSENT_LOGIT)
        present = lr.classes_.astype(np.int64)
        if lr.coef_.shape[0] == 1:
            coef[present[1]], intercept[present[1]], intercept[present[0]] = lr.coef_[0], lr.intercept_[0], 0.0
        else:
            coef[present], intercept[present] = lr.coef_, lr.intercept_
        return coef, intercept
    ridge = Ridge(alpha=alpha).fit(x, np.asarray(y_train, dtype=np.float64), sample_weight=sample_weight)
    return ridge.coef_.reshape(1, -1), np.atleast_1d(ridge.intercept_).astype(np.float64)


def onnx_nodes(x: str, coef: np.ndarray, intercept: np.ndarray, labels: bool) -> tuple[list, list, str]:
    """ONNX nodes from the float matrix ``x`` [N, F] to 'probabilities' [N, K] (softmax) or 'standardized' [N, 1]:
    (nodes, initializers, the output's name)."""
    from onnx import helper, numpy_helper

    out = "probabilities" if labels else "standardized"
    inits = [numpy_helper.from_array(np.asarray(coef.T, dtype=np.float32), "core/weights"),
             numpy_helper.from_array(np.asarray(intercept, dtype=np.float32), "core/bias")]
    nodes = [helper.make_node("MatMul", [x, "core/weights"], ["core/xw"], name="core/matmul"),
             helper.make_node("Add", ["core/xw", "core/bias"], ["core/logits" if labels else out], name="core/add")]
    if labels:
        nodes.append(helper.make_node("Softmax", ["core/logits"], [out], name="core/softmax", axis=-1))
    return nodes, inits, out


def save_arrays(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """numpy arrays and a JSON-able dict as one ``.npz`` (written atomically; no pickle)."""
    import io

    from forgeml.artifacts import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **arrays, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    atomic_write_bytes(Path(path), buf.getvalue())


def load_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """What ``save_arrays`` wrote: (arrays, meta), loaded with ``allow_pickle=False``."""
    with np.load(Path(path), allow_pickle=False) as f:
        return {k: f[k] for k in f.files if k != "meta"}, json.loads(f["meta"].tobytes().decode())
