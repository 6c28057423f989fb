"""A strong non-deep baseline on the same split, so a user sees whether the network helped.

Each feature type declares its block of the baseline's matrix (``FeatureType.baseline_block``). A block alone goes
to the learner tagged ``baseline:<block>``, servable and a candidate of `model: auto`, so trained once: ``dense``
(pixels) to ``pixels_linear`` (logistic or ridge regression on the pixels), ``tfidf`` (text) to ``tfidf_linear``
(TF-IDF of the token ids + logistic or ridge regression); ``table`` inputs to LightGBM. Blocks together get a
scikit-learn baseline forgeml neither saves nor serves: ``dense`` beside others, a linear model on the pixels alone
(``linear-pixels``); ``tfidf`` beside ``table``, LightGBM on the table and a TF-IDF of the joined raw text.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from forgeml.core import LEARNERS
from forgeml.features import present
from forgeml.features.text import joined_text


def blocks_of(pre_state: dict) -> dict[str, list[tuple]]:
    """Baseline block -> (type, state) of the types present that declare it, in input order."""
    blocks: dict[str, list[tuple]] = {}
    for ftype, state in present(pre_state):
        if ftype.baseline_block:
            blocks.setdefault(ftype.baseline_block, []).append((ftype, state))
    return blocks


def kind_for(pre_state: dict) -> str:
    """The baseline for the run's preprocessing (the types present and their declared blocks)."""
    blocks = set(blocks_of(pre_state))
    alone = LEARNERS.tagged(f"baseline:{next(iter(blocks))}") if len(blocks) == 1 else []
    if alone:  # a registered learner: a candidate beside the network, servable when it wins
        return alone[0]
    if "dense" in blocks:
        return "linear-pixels"
    if "tfidf" in blocks:
        return "lightgbm+tfidf"
    return "lightgbm"


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


def run_baseline(kind: str, task, enc: dict, y: dict, raw_df: dict[str, pd.DataFrame], pre_state: dict, seed: int, threads=None) -> dict[str, np.ndarray]:
    """Fit on train, return raw outputs for 'val' and 'test' (same form as the torch models'). ``pre_state``: the
    run's preprocessing, whose types say which block their inputs form."""
    blocks = blocks_of(pre_state)
    text_columns = [c for _, state in blocks.get("tfidf", []) for c in state["columns"]]
    if kind == "linear-pixels":
        flat = {s: _dense(enc[s], _keys(blocks, "dense")) for s in enc}
        model = _linear(task, seed).fit(flat["train"], y["train"])
        return {s: _raw_from_sklearn(model, flat[s], task) for s in ("val", "test")}
    if kind in LEARNERS and any(t.startswith("baseline:") for t in LEARNERS.get(kind).tags):  # with its defaults
        learner = LEARNERS.get(kind)
        model = learner.fit(learner.Params(), task, enc["train"], y["train"], enc["val"], y["val"], seed, threads)
        return {s: learner.raw(model, enc[s], task) for s in ("val", "test")}
    from forgeml.models.gbdt import LightGBMParams
    from forgeml.models import gbdt

    if kind == "lightgbm+tfidf":
        import scipy.sparse as sp
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(min_df=2, max_features=5000, sublinear_tf=True)
        texts = {s: joined_text(raw_df[s], text_columns) for s in raw_df}
        vec.fit(texts["train"])
        table = _keys(blocks, "table")
        x = {}
        for s in enc:
            tab = {k: enc[s][k] for k in table if k in enc[s]}
            blocks_s = ([sp.csr_matrix(gbdt.feature_matrix(tab))] if tab else []) + [vec.transform(texts[s])]
            x[s] = sp.hstack(blocks_s).tocsr().astype(np.float64)
        booster = gbdt.fit_matrix(LightGBMParams(), task, x["train"], y["train"], x["val"], y["val"], seed, threads)
        return {s: gbdt.raw_matrix_outputs(booster, x[s], task) for s in ("val", "test")}
    booster = gbdt.fit(LightGBMParams(), task, enc["train"], y["train"], enc["val"], y["val"], seed, threads)
    return {s: gbdt.raw_outputs(booster, enc[s], task) for s in ("val", "test")}
