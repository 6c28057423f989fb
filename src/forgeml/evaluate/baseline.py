"""A strong non-deep baseline on the same split, so a user sees whether the network helped.

tables: LightGBM (trained once; it is also a candidate of `model: auto`); text: TF-IDF + logistic/ridge
regression; images: a linear model on the normalized pixels.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from forgeml.features.text import joined_text


def kind_for(feature_types: set[str]) -> str:
    if "image" in feature_types:
        return "linear-pixels"
    if feature_types == {"text"}:
        return "tfidf-linear"
    if "text" in feature_types:
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


def run_baseline(kind: str, task, enc: dict, y: dict, raw_df: dict[str, pd.DataFrame], text_columns: list[str], seed: int, threads=None) -> dict[str, np.ndarray]:
    """Fit on train, return raw outputs for 'val' and 'test' (same form as the torch models')."""
    if kind == "linear-pixels":
        flat = {s: enc[s]["image"].reshape(len(enc[s]["image"]), -1) for s in enc}
        model = _linear(task, seed).fit(flat["train"], y["train"])
        return {s: _raw_from_sklearn(model, flat[s], task) for s in ("val", "test")}
    if kind == "tfidf-linear":
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=50000, sublinear_tf=True)
        x = {"train": vec.fit_transform(joined_text(raw_df["train"], text_columns))}
        for s in ("val", "test"):
            x[s] = vec.transform(joined_text(raw_df[s], text_columns))
        model = _linear(task, seed).fit(x["train"], y["train"])
        return {s: _raw_from_sklearn(model, x[s], task) for s in ("val", "test")}
    from forgeml.config import LightGBMParams
    from forgeml.models import gbdt

    if kind == "lightgbm+tfidf":
        import scipy.sparse as sp
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(min_df=2, max_features=5000, sublinear_tf=True)
        texts = {s: joined_text(raw_df[s], text_columns) for s in raw_df}
        vec.fit(texts["train"])
        x = {}
        for s in enc:
            tab = {k: v for k, v in enc[s].items() if k in ("numeric", "categorical")}
            blocks = ([sp.csr_matrix(gbdt.feature_matrix(tab))] if tab else []) + [vec.transform(texts[s])]
            x[s] = sp.hstack(blocks).tocsr().astype(np.float64)
        booster = gbdt.fit_matrix(LightGBMParams(), task, x["train"], y["train"], x["val"], y["val"], seed, threads)
        return {s: gbdt.raw_matrix_outputs(booster, x[s], task) for s in ("val", "test")}
    booster = gbdt.fit(LightGBMParams(), task, enc["train"], y["train"], enc["val"], y["val"], seed, threads)
    return {s: gbdt.raw_outputs(booster, enc[s], task) for s in ("val", "test")}
