"""A strong non-deep baseline on the same split, so a user sees whether the network helped.

Each feature type declares its block of the baseline's matrix (``FeatureType.baseline_block``: ``table`` for
numerics, categoricals and dates, ``tfidf`` for text, ``dense`` for pixels). The blocks a run has, joined by ``+``
in name order, name the baseline: the learner tagged ``baseline:<blocks>``, trained with its default parameters
(once, when it is also a candidate of `model: auto`), saved, exported and served like any model:

| blocks | learner |
| --- | --- |
| table | ``lightgbm`` |
| tfidf | ``tfidf_linear`` (TF-IDF of the word ids + logistic or ridge regression) |
| table+tfidf | ``lightgbm_tfidf`` (LightGBM on the columns beside a TF-IDF of the word ids) |
| dense | ``pixels_linear`` (logistic or ridge regression on the pixels) |

Blocks no learner declares (a plugin type's ``dense`` beside a table) get ``linear-pixels``: scikit-learn's linear
model on the dense inputs alone, scored but never saved or served.
"""
from __future__ import annotations

import numpy as np

from forgeml.core import LEARNERS
from forgeml.features import present

LINEAR_DENSE = "linear-pixels"


def blocks_of(pre_state: dict) -> dict[str, list[tuple]]:
    """Baseline block -> (type, state) of the types present that declare it, in input order."""
    blocks: dict[str, list[tuple]] = {}
    for ftype, state in present(pre_state):
        if ftype.baseline_block:
            blocks.setdefault(ftype.baseline_block, []).append((ftype, state))
    return blocks


def kind_for(pre_state: dict) -> str:
    """The baseline for the run's preprocessing (the types present and their declared blocks)."""
    blocks = sorted(blocks_of(pre_state))
    tagged = LEARNERS.tagged("baseline:" + "+".join(blocks))
    if tagged:
        return tagged[0]
    return LINEAR_DENSE if "dense" in blocks else LEARNERS.tagged("baseline:table")[0]


def _linear(task, seed):
    from sklearn.linear_model import LogisticRegression, Ridge

    if "labels" in task.tags:
        return LogisticRegression(max_iter=2000, C=1.0, random_state=seed)
    return Ridge(alpha=1.0)


def _raw_from_sklearn(model, x, task) -> np.ndarray:
    if "labels" in task.tags:
        # a class absent from the training split gets no column from sklearn: put columns back by class id
        proba = np.full((x.shape[0], task.out_dim), 1e-9)
        proba[:, model.classes_] = np.clip(model.predict_proba(x), 1e-9, 1)
        return np.log(proba)  # log-probabilities act as logits for Task.outputs
    return model.predict(x).astype(np.float64)


def _keys(blocks: dict, block: str) -> list[str]:
    return [k for ftype, state in blocks.get(block, []) for k in ftype.model_inputs(state)]


def _dense(arrays: dict, keys: list[str]) -> np.ndarray:
    parts = [arrays[k].reshape(len(arrays[k]), -1) for k in keys]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def run_baseline(kind: str, task, enc: dict, y: dict, pre_state: dict, seed: int, threads=None) -> dict[str, np.ndarray]:
    """Fit on train, return raw outputs for 'val' and 'test' (same form as the torch models'). ``pre_state``: the
    run's preprocessing, whose types say which block their inputs form."""
    if kind == LINEAR_DENSE:
        blocks = blocks_of(pre_state)
        flat = {s: _dense(enc[s], _keys(blocks, "dense")) for s in enc}
        model = _linear(task, seed).fit(flat["train"], y["train"])
        return {s: _raw_from_sklearn(model, flat[s], task) for s in ("val", "test")}
    learner = LEARNERS.get(kind)  # a learner tagged baseline:<blocks>, with its default parameters
    from forgeml.cpus import threads_for_table

    model = learner.fit(learner.Params(), task, enc["train"], y["train"], enc["val"], y["val"], seed,
                        threads or threads_for_table(enc["train"]))
    return {s: learner.raw(model, enc[s], task) for s in ("val", "test")}
