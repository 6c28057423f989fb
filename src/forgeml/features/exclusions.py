"""Columns that must not be features, found on the training split and left out of a run unless data.features names
them: row numbers and unique IDs (a distinct key per row cannot generalize, and it leaks the row order), constant
columns (nothing to learn) and single-column leaks (one column alone predicts the target on held-out rows).

The same rules drive ``forgeml profile``'s flags (id_like, constant) and its leakage suspects, so what the profile
warns about is what training leaves out. What is checked follows a column's type tags: ``ordered`` (numbers: a tree
on one column) and ``levels`` (compared by value: per-level lookup, all-distinct strings look like an ID).
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import pandas as pd

ID_UNIQUE = 0.99  # an integer or string key column with a distinct value in at least 99% of the rows is ID-like
ID_MIN_ROWS = 20  # fewer rows than this: too few to call a column an ID
LEAK_SCORE = 0.99  # a single feature reaching this held-out balanced accuracy / R^2 is a leakage suspect
LEAK_TREE_DEPTH = 6  # depth of the one-feature decision tree used for numeric features
LEAK_HOLDOUT = 0.3  # share of the sampled rows the single-feature models are scored on
EXCLUSION_ROWS = 5_000  # training rows sampled for training's single-column leak check


def hashable(col: pd.Series) -> pd.Series:
    """Object columns holding arrays (images in memory) or lists/dicts (nested JSON) become bytes / text, so they can
    be hashed and counted like any other column (decided on the first 1,000 values)."""
    from collections.abc import Hashable

    if col.dtype != object:
        return col
    head = col.dropna().head(1000).tolist()
    if not any(isinstance(v, np.ndarray) or not isinstance(v, Hashable) for v in head):
        return col
    return col.map(lambda v: v.tobytes() if isinstance(v, np.ndarray) else v if isinstance(v, Hashable) else str(v))


def id_like(col: pd.Series, tags: frozenset) -> bool:
    """(Almost) all distinct (checked by the caller) and key-like: dense integers (1..n, 1001..2000: max - min < 2 x rows)
    or strings without spaces, in a type compared by value (free text is not a key)."""
    if pd.api.types.is_integer_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return float(col.max()) - float(col.min()) < 2 * len(col)
    if "levels" in tags and not pd.api.types.is_numeric_dtype(col):
        return bool((col.astype(str).str.count(r"\s+") == 0).mean() > 0.9)
    return False


def column_flag(col: pd.Series, tags: frozenset, unique: Optional[int] = None) -> Optional[str]:
    """``constant`` (at most one distinct value), ``id_like`` (a distinct key per row) or None, for a column of a type
    tagged ``ordered`` or ``levels``; ``unique``: its distinct non-missing values when the caller counted them."""
    n = len(col)
    unique = int(col.nunique(dropna=True)) if unique is None else unique
    if unique <= 1:
        return "constant"
    if unique >= ID_UNIQUE * n and n >= ID_MIN_ROWS and id_like(col.dropna(), tags):
        return "id_like"
    return None


def single_feature_scores(columns: dict[str, pd.Series], kinds: dict[str, str], rows: np.ndarray, y_enc: np.ndarray,
                          classification: bool, seed: int) -> dict:
    """Each column alone: a depth-6 tree (an ``ordered`` type: numbers) or a per-level lookup (other types), fitted on
    70% of ``rows`` and scored on the other 30% (balanced accuracy for classification, R^2 for regression).
    ``y_enc``: the encoded target of ``rows`` (class codes or numbers)."""
    from sklearn.metrics import balanced_accuracy_score, r2_score
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    from forgeml.features import tags_of

    y = y_enc.astype(np.int64) if classification else y_enc.astype(np.float64)
    order = np.random.default_rng(seed + 1).permutation(len(rows))
    n_te = max(1, int(round(LEAK_HOLDOUT * len(rows))))
    te, tr = np.sort(order[:n_te]), np.sort(order[n_te:])
    y_tr, y_te = y[tr], y[te]
    metric = "balanced accuracy" if classification else "R^2"
    scores = []
    if len(tr) >= 10 and len(np.unique(y_te)) >= 2:
        for name, full in columns.items():
            col = full.iloc[rows].reset_index(drop=True)
            if "ordered" in tags_of(kinds[name]):
                x = col.to_numpy(dtype=np.float64, na_value=np.nan)
                x = np.where(np.isinf(x), np.nan, x).reshape(-1, 1)
                tree = DecisionTreeClassifier if classification else DecisionTreeRegressor
                model = tree(max_depth=LEAK_TREE_DEPTH, random_state=0)
                model.fit(x[tr], y_tr)
                pred = model.predict(x[te])
                how = f"depth-{LEAK_TREE_DEPTH} tree"
            else:
                codes, levels = pd.factorize(col, use_na_sentinel=False)
                pred = lookup(codes[tr], y_tr, codes[te], len(levels), classification)
                how = "per-level lookup"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                score = balanced_accuracy_score(y_te, pred) if classification else r2_score(y_te, pred)
            scores.append({"feature": name, "model": how, "score": float(score), "suspect": False})
    scores.sort(key=lambda s: -s["score"])
    return {"rows_fit": int(len(tr)), "rows_heldout": int(len(te)), "metric": metric, "threshold": LEAK_SCORE,
            "baseline": 1 / (int(y.max()) + 1) if classification else 0.0, "scores": scores}


def lookup(c_tr: np.ndarray, y_tr: np.ndarray, c_te: np.ndarray, levels: int, classification: bool) -> np.ndarray:
    """Predict each level's majority class (or mean) seen in the fitting rows; unseen levels get the overall one."""
    if classification:  # sparse (level, class) counts: levels x classes can be large
        k = int(y_tr.max()) + 1
        pairs, counts = np.unique(c_tr.astype(np.int64) * k + y_tr, return_counts=True)
        level, cls = pairs // k, pairs % k
        order = np.lexsort((counts, level))  # by level, then count: the last row of each level is its majority
        last = order[np.r_[level[order][1:] != level[order][:-1], True]]
        per_level = np.full(levels, np.bincount(y_tr).argmax())
        per_level[level[last]] = cls[last]
    else:
        counts = np.bincount(c_tr, minlength=levels)
        sums = np.bincount(c_tr, weights=y_tr, minlength=levels)
        per_level = np.where(counts > 0, sums / np.maximum(counts, 1), y_tr.mean())
    return per_level[c_te]


# ------------------------------------------------------------------------------------------------ training
def excluded_columns(train: pd.DataFrame, features: list, y_train: np.ndarray, classification: bool,
                     keep: set, seed: int = 0) -> list[dict]:
    """The inferred features to leave out, found on the training rows: ``[{"column", "type", "reason", "detail"}]``
    with reason ``id_like``, ``constant`` or ``leak``. Columns in ``keep`` (named in data.features) are never left out;
    leaks that are all the model would have left are marked ``"kept": True`` (a suspect to report, not to drop).
    ``y_train`` None (no target: anomaly detection): IDs and constants only."""
    from forgeml.features import tags_of

    out = []
    checked = {}
    for f in features:
        tags = tags_of(f.type)
        if f.name in keep or not {"ordered", "levels"} & tags:
            continue
        col = hashable(train[f.name])
        flag = column_flag(col, tags)
        if flag == "constant":
            values = col.dropna().unique()
            what = f"the single value {values[0]!r}" if len(values) else "no value"
            out.append({"column": f.name, "type": f.type, "reason": "constant", "detail": f"{what} in every training row"})
        elif flag == "id_like":
            share = f"a distinct value in {col.nunique() / max(len(col), 1):.0%} of the training rows"
            what = (f"row numbers ({col.min()}..{col.max()}), {share}" if pd.api.types.is_integer_dtype(col)
                    else f"{share}, like {str(col.dropna().iloc[0])[:40]!r}")
            out.append({"column": f.name, "type": f.type, "reason": "id_like", "detail": what})
        else:
            checked[f.name] = col
    if not checked or len(train) < 20 or y_train is None:
        return out
    if classification and len(np.unique(y_train)) < 2:
        return out
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(train), EXCLUSION_ROWS, replace=False)) if len(train) > EXCLUSION_ROWS else np.arange(len(train))
    kinds = {f.name: f.type for f in features}
    single = single_feature_scores(checked, kinds, rows, y_train[rows], classification, seed)
    leaks = [{"column": s["feature"], "type": kinds[s["feature"]], "reason": "leak",
              "detail": f"alone predicts the target on held-out training rows ({single['metric']} {s['score']:.4f} >= "
                        f"{LEAK_SCORE}, {s['model']})"} for s in single["scores"] if s["score"] >= LEAK_SCORE]
    gone = {e["column"] for e in out + leaks}
    if leaks and not [f for f in features if f.name not in gone]:  # nothing else to learn from: keep them, say so
        leaks = [{**e, "kept": True} for e in leaks]
    return out + leaks


REASONS = {"id_like": "an ID", "constant": "constant", "leak": "a single-column leak"}


def kept_notice(kept: list[dict]) -> str:
    """The warning for leak suspects kept because nothing else would be left to learn from."""
    names = ", ".join(repr(e["column"]) for e in kept)
    return (f"possible target leakage: {names} alone predict{'s' if len(kept) == 1 else ''} the target "
            f"({kept[0]['detail'].split('(', 1)[1].rstrip(')')}); kept, as the only inputs left. Check "
            f"{'it is' if len(kept) == 1 else 'they are'} not derived from the target or known only after it")


def notice(excluded: list[dict]) -> str:
    """The line training prints: each column left out, why, and how to keep it."""
    parts = [f"{e['column']!r} ({REASONS.get(e['reason'], e['reason'])}: {e['detail']})" for e in excluded]
    first = excluded[0]
    return (f"left out {len(excluded)} column{'s' if len(excluded) > 1 else ''} that must not be features: "
            f"{'; '.join(parts)}. To keep one, name it with its type: --set data.features.{first['column']}={first['type']} "
            f"(or data.features: {{{first['column']}: {first['type']}}} in the config)")
