"""Data-quality profile of a table before training: types, missing values, duplicates, outliers, class balance,
the features most associated with the target, and leakage suspects.

Everything here is a pure function of the rows: ``profile`` returns a JSON-able dict that the terminal summary and
the HTML report (forgeml.evaluate.profile_report) render. Types come from forgeml.data.schema and the split from
forgeml.data.split, so the profile agrees with what ``forgeml train`` would do with the same data.

Built for large tables: whole-column work is vectorized pandas/numpy (rows are hashed for duplicates, never compared
in Python), and the expensive parts (association, single-feature models) run on a seeded row sample.
"""
from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from collections.abc import Hashable
from typing import Callable, Optional

import numpy as np
import pandas as pd

from forgeml.errors import DataError

# ------------------------------------------------------------------------------------------------ rules (documented)
OUTLIER_IQR = 1.5  # a value is an outlier outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR]
ID_UNIQUE = 0.99  # an integer or string key column with a distinct value in at least 99% of the rows is ID-like
HIGH_CARDINALITY = 100  # a categorical feature with more distinct values than this is high-cardinality
MANY_MISSING = 0.5  # a column missing in more than half of the rows gets a warning
IMBALANCE_MIN_SHARE = 0.10  # smallest class below 10% of the labelled rows ...
IMBALANCE_MAX_RATIO = 10.0  # ... or largest class more than 10x the smallest: imbalanced
LEAK_SCORE = 0.99  # a single feature reaching this held-out balanced accuracy / R^2 is a leakage suspect
LEAK_TREE_DEPTH = 6  # depth of the one-feature decision tree used for numeric features
ASSOCIATION_ROWS = 200_000  # row sample for the association scores
LEAK_ROWS = 50_000  # row sample for the single-feature models (split 70/30 into fit / held-out rows)
LEAK_HOLDOUT = 0.3
MI_BINS = 20  # numeric features (and a regression target) are cut into this many quantile bins for mutual information
MI_LEVELS = 50  # categorical features: the most frequent levels kept, the rest pooled as 'other'
TOP_FEATURES = 10
MAX_CLASSES = 1000  # a classification target with more classes gets no association / leakage checks
EXAMPLES = 5  # duplicate-row examples shown
HIST_BINS = 40
MAX_FLIERS = 200  # outlier values kept per column for the box plot
TEXT_SUFFIXES = {".csv", ".tsv", ".jsonl", ".ndjson"}

Step = Callable[[str], None]


def rules() -> dict:
    """The thresholds the profile applies, as reported in its output."""
    return {
        "outlier_iqr": OUTLIER_IQR, "id_unique": ID_UNIQUE, "high_cardinality": HIGH_CARDINALITY, "many_missing": MANY_MISSING,
        "imbalance_min_share": IMBALANCE_MIN_SHARE, "imbalance_max_ratio": IMBALANCE_MAX_RATIO,
        "leak_score": LEAK_SCORE, "leak_tree_depth": LEAK_TREE_DEPTH, "association_rows": ASSOCIATION_ROWS,
        "leak_rows": LEAK_ROWS, "leak_holdout": LEAK_HOLDOUT, "mi_bins": MI_BINS, "mi_levels": MI_LEVELS,
        "max_classes": MAX_CLASSES,
    }


# ------------------------------------------------------------------------------------------------ reading
def check_text_file(path: Path) -> None:
    """A csv/tsv/jsonl file must be UTF-8 text: binary content gets a clear message instead of a parser error."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if not head:
        return  # read_table reports empty files
    fmt = path.suffix.lower()[1:]
    what = f"{path} does not look like a {fmt} file"
    if b"\x00" in head:
        raise DataError(f"{what}: it holds NUL bytes (binary data, or UTF-16 text); give a UTF-8 text {fmt} file, "
                        "or a .parquet file")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the window
            raise DataError(f"{what}: it is not UTF-8 text (byte 0x{head[exc.start]:02x} at offset {exc.start}); "
                            f"it may be binary or use another encoding: save it as UTF-8 {fmt}") from None
    codes = np.frombuffer(head, dtype=np.uint8)
    control = (codes < 32) & ~np.isin(codes, (9, 10, 13))
    if control.mean() > 0.05:
        raise DataError(f"{what}: {control.mean():.0%} of its first bytes are control characters (binary data); "
                        f"give a UTF-8 text {fmt} file, or a .parquet file")


def load(source: str, target: Optional[str] = None) -> tuple[pd.DataFrame, Optional[str]]:
    """Read the data as training does (forgeml.data.sources.read_source); check the target column exists."""
    from forgeml.data.sources import read_source

    if not source.startswith("bundled:"):
        path = Path(source).expanduser()
        if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES:
            check_text_file(path)
    df, implied = read_source(source)
    if len(df) == 0 or df.shape[1] == 0:
        raise DataError(f"{source} has no rows or no columns")
    target = target or implied
    if target is not None and target not in df.columns:
        raise DataError(f"target column {target!r} not found; available columns: {list(df.columns)}")
    return df, target


def profile_source(source: str, target: Optional[str] = None, step: Step = lambda msg: None, seed: int = 0) -> dict:
    """Read ``source`` as training does, then profile it; ``step`` is told what runs now (for a progress line)."""
    step(f"reading {source}")
    tic = time.perf_counter()
    df, target = load(source, target)
    read_s = round(time.perf_counter() - tic, 3)
    result = profile(df, target, source=source, step=step, seed=seed)
    result["seconds"] = {"read": read_s, **result["seconds"]}
    return result


# ------------------------------------------------------------------------------------------------ the profile
def profile(df: pd.DataFrame, target: Optional[str] = None, *, source: str = "", step: Step = lambda msg: None,
            seed: int = 0) -> dict:
    """Profile a table; ``target`` (optional) adds class balance / target distribution, association and leakage."""
    if len(df) == 0 or df.shape[1] == 0:
        raise DataError(f"{source or 'the table'} has no rows or no columns")
    if target is not None and target not in df.columns:
        raise DataError(f"target column {target!r} not found; available columns: {list(df.columns)}")
    df = df.rename(columns=str)
    n = len(df)
    seconds: dict[str, float] = {}
    warns: list[dict] = []
    started = [time.perf_counter()]

    def stage(name: str, message: str) -> None:
        started[0] = time.perf_counter()
        step(message)

    def done(name: str) -> None:
        seconds[name] = round(time.perf_counter() - started[0], 3)

    stage("columns", "column types, missing values, outliers")
    hashable = {c: _hashable(df[c]) for c in df.columns}
    columns = [_column(name, df[name], hashable[name], n, name == target) for name in df.columns]
    for info in columns:
        warns += _column_warnings(info, n)
    done("columns")

    stage("duplicates", "duplicate rows (hashing)")
    features = [c for c in df.columns if c != target]
    by_name = {c["name"]: c for c in columns}
    h_all = _row_hash(pd.DataFrame(hashable))
    duplicates = _duplicates(df, h_all)
    if duplicates["rows"]:
        warns.append(_warn("duplicates", None,
                           f"exact duplicate rows: {duplicates['rows']:,} ({duplicates['pct']:.2f}% of rows repeat an earlier "
                           "row in every column): drop them (pandas drop_duplicates) unless the repeats are real, separate events"))
    done("duplicates")

    missing_cells = int(sum(c["missing"] for c in columns))
    result = {
        "source": source, "rows": n, "columns": df.shape[1],
        "memory_mb": round(float(df.memory_usage(deep=False).sum()) / 1e6, 1),
        "target": target, "task": None, "rules": rules(),
        "column_info": columns,
        "missing": {"cells": missing_cells, "cells_pct": _pct(missing_cells, n * df.shape[1]),
                    "columns_with_missing": sum(1 for c in columns if c["missing"])},
        "duplicates": duplicates,
        "target_summary": None, "association": None, "leakage": None,
        "warnings": warns, "seconds": seconds,
    }
    if target is None:
        return _jsonable(result)

    stage("target", f"target {target!r}")
    y = df[target]
    present = y.notna().to_numpy()
    summary, task = _target_summary(y[present], target, n)
    summary["missing"] = int(n - present.sum())
    result["target_summary"], result["task"] = summary, task
    if summary["missing"]:
        warns.append(_warn("target_missing", target, f"{summary['missing']:,} rows have no target value "
                                                     f"({_pct(summary['missing'], n):.2f}%): training drops them"))
    warns += summary.pop("_warnings")
    done("target")
    classes = summary.get("classes_total", 0)
    if task == "classification" and classes > MAX_CLASSES:
        warns.append(_warn("too_many_classes", target,
                           f"target {target!r} has {classes:,} classes (> {MAX_CLASSES}): check it is the right column; "
                           "association and leakage checks are skipped"))
    usable = task == "regression" or (task == "classification" and 2 <= classes <= MAX_CLASSES)
    if not usable or not features:
        return _jsonable(result)

    pos = np.flatnonzero(present)
    y_enc = encode_target(y.iloc[pos].reset_index(drop=True), task)
    candidates = [c for c in features if by_name[c]["type"] in ("numeric", "categorical", "text")
                  and not {"constant", "empty"} & set(by_name[c]["flags"])]
    rng = np.random.default_rng(seed)
    m = min(len(pos), ASSOCIATION_ROWS)
    sample = np.sort(rng.choice(len(pos), m, replace=False)) if m < len(pos) else np.arange(len(pos))

    stage("association", f"association with the target ({m:,} {'sampled ' if m < len(pos) else ''}rows)")
    assoc = _association(df, hashable, by_name, candidates, pos[sample], y_enc[sample], task)
    assoc["sampled"] = m < len(pos)
    done("association")

    stage("leakage", "leakage checks: single-feature models, duplicates across the split")
    leak_rows = sample[np.sort(rng.permutation(len(sample))[:LEAK_ROWS])] if len(sample) > LEAK_ROWS else sample
    single = _single_feature_scores(df, hashable, by_name, candidates, pos[leak_rows], y_enc[leak_rows], task, seed)
    scores = {s["feature"]: s for s in single["scores"]}
    for a in assoc["features"]:
        s = scores.get(a["feature"])
        a["single_feature_score"] = None if s is None else s["score"]
    assoc["features"].sort(key=lambda a: -a["mi_bits"])
    for s in single["scores"]:
        if s["score"] is not None and s["score"] >= LEAK_SCORE:
            s["suspect"] = True
            warns.append(_warn("leakage", s["feature"],
                               f"possible target leakage: {s['feature']!r} alone predicts {target!r} on held-out rows "
                               f"({single['metric']} {s['score']:.4f} >= {LEAK_SCORE}, {s['model']} fitted on "
                               f"{single['rows_fit']:,} sampled rows). Check whether it is derived from the target or only "
                               f"known after it; if so drop it (config data.features: {{{s['feature']}: ignore}})"))
    split_cols = [c for c in features if by_name[c]["type"] != "ignore" and "id_like" not in by_name[c]["flags"]]
    dup_split = _duplicates_across_split(hashable, split_cols, pos, y_enc, task == "classification", seed=0)
    if dup_split["straddling_vectors"]:
        d = dup_split
        warns.append(_warn("leakage_duplicates", None,
                           f"feature vectors occurring more than once: {d['duplicated_vectors']:,} "
                           f"({d['rows_in_duplicates']:,} rows); "
                           f"{d['straddling_vectors']:,} of them straddle forgeml's default split ({d['split']}), leaving "
                           f"validation/test rows with an identical copy in training: {d['heldout_rows_seen_in_train']:,} "
                           f"({d['test_rows_seen_in_train']:,} in test), so held-out scores look better than they are. Drop the "
                           "duplicates before training (drop_duplicates on the feature columns), or keep each group on one "
                           "side of the split"))
    done("leakage")
    result["association"] = assoc
    result["leakage"] = {"single_feature": single, "duplicates": dup_split}
    return _jsonable(result)


# ------------------------------------------------------------------------------------------------ columns
def _hashable(col: pd.Series) -> pd.Series:
    """Object columns holding arrays (images in memory) or lists/dicts (nested JSON) become bytes / text, so they can
    be hashed and counted like any other column (decided on the first 1,000 values)."""
    if col.dtype != object:
        return col
    head = col.dropna().head(1000).tolist()
    if not any(isinstance(v, np.ndarray) or not isinstance(v, Hashable) for v in head):
        return col
    return col.map(lambda v: v.tobytes() if isinstance(v, np.ndarray) else v if isinstance(v, Hashable) else str(v))


def _column(name: str, col: pd.Series, hcol: pd.Series, n: int, is_target: bool) -> dict:
    from forgeml.data.schema import infer_type

    missing = int(col.isna().sum())
    try:
        kind = infer_type(col)
    except DataError:
        kind = "empty"
    counts = hcol.value_counts(dropna=True, sort=True) if kind != "numeric" else None
    unique = len(counts) if counts is not None else int(hcol.nunique(dropna=True))
    info = {"name": name, "dtype": str(col.dtype), "type": kind, "role": "target" if is_target else "feature",
            "missing": missing, "missing_pct": _pct(missing, n), "unique": unique, "flags": [], "stats": None, "top": None}
    if kind == "numeric" and not is_target:  # the target's distribution is in the target summary
        info["stats"] = numeric_stats(col)
    elif counts is not None and len(counts):
        info["top"] = [[_display(v), int(c)] for v, c in counts.head(3).items()]
    if is_target:
        return info
    flags = info["flags"]
    if kind == "empty":
        flags.append("empty")
    elif unique <= 1:
        flags.append("constant")
    elif unique >= ID_UNIQUE * n and n >= 20 and _id_like(col, kind):
        flags.append("id_like")
    elif kind == "categorical" and unique > HIGH_CARDINALITY:
        flags.append("high_cardinality")
    if kind != "empty" and missing > MANY_MISSING * n:
        flags.append("many_missing")
    if info["stats"] and info["stats"]["infinite"]:
        flags.append("infinite")
    return info


def _id_like(col: pd.Series, kind: str) -> bool:
    """(Almost) all distinct (checked by the caller) and key-like: dense integers (1..n, 1001..2000: max - min < 2 x rows)
    or strings without spaces (free text is not a key)."""
    if pd.api.types.is_integer_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return float(col.max()) - float(col.min()) < 2 * len(col)
    if kind in ("categorical", "text") and not pd.api.types.is_numeric_dtype(col):
        return bool((col.astype(str).str.count(r"\s+") == 0).mean() > 0.9)
    return False


def numeric_stats(col: pd.Series) -> dict:
    """Summary, IQR outliers, histogram and box-plot statistics of a numeric column (missing and infinite values left out)."""
    x = col.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(x)
    infinite = int((np.isinf(x)).sum())
    v = x[finite]
    if v.size == 0:
        return {"count": 0, "infinite": infinite, "outliers": None, "outliers_pct": None, "hist": None, "box": None}
    q1, median, q3 = (float(q) for q in np.quantile(v, [0.25, 0.5, 0.75]))
    iqr = q3 - q1
    lo, hi = q1 - OUTLIER_IQR * iqr, q3 + OUTLIER_IQR * iqr
    out = (v < lo) | (v > hi)
    n_out = int(out.sum()) if iqr > 0 else None  # IQR 0 (one value dominates): the rule would flag every other value
    vmin, vmax = float(v.min()), float(v.max())
    counts, edges = np.histogram(v, bins=HIST_BINS if vmax > vmin else 1)
    inside = v[~out] if iqr > 0 else v
    fliers = np.sort(v[out]) if n_out else np.array([])
    if fliers.size > MAX_FLIERS:  # keep the extremes and an even spread between them
        fliers = fliers[np.unique(np.linspace(0, fliers.size - 1, MAX_FLIERS).round().astype(int))]
    return {
        "count": int(v.size), "infinite": infinite, "mean": float(v.mean()), "std": float(v.std()),
        "min": vmin, "q1": q1, "median": median, "q3": q3, "max": vmax, "iqr": iqr,
        "lower_fence": lo, "upper_fence": hi, "outliers": n_out,
        "outliers_pct": None if n_out is None else _pct(n_out, v.size),
        "hist": {"counts": counts.tolist(), "edges": edges.tolist()},
        "box": {"q1": q1, "med": median, "q3": q3, "whislo": float(inside.min()), "whishi": float(inside.max()),
                "fliers": fliers.tolist()},
    }


def _column_warnings(info: dict, n: int) -> list[dict]:
    name, out = info["name"], []
    for flag in info["flags"]:
        if flag == "empty":
            out.append(_warn("empty", name, f"{name!r} is entirely missing: training stops on it; drop the column or set "
                                            f"data.features: {{{name}: ignore}}"))
        elif flag == "constant":
            rest = " apart from missing values" if info["missing"] else ""
            out.append(_warn("constant", name, f"{name!r} is constant (a single value{rest}): it cannot help the model; "
                                               f"drop it or set data.features: {{{name}: ignore}}"))
        elif flag == "id_like":
            out.append(_warn("id_like", name, f"{name!r} looks like an ID (a distinct {info['dtype']} value in "
                                              f"{info['unique'] / n:.1%} of rows): it "
                                              f"cannot generalize to new rows and may leak row order; drop it or set "
                                              f"data.features: {{{name}: ignore}}"))
        elif flag == "high_cardinality":
            out.append(_warn("high_cardinality", name,
                             f"{name!r} is a high-cardinality categorical ({info['unique']:,} distinct values > {HIGH_CARDINALITY}): "
                             "rare levels are learned from few rows and training keeps only the data.max_categories (1000) most "
                             "frequent; group rare levels, or ignore the column if it is a free-form key"))
        elif flag == "many_missing":
            out.append(_warn("many_missing", name, f"{name!r} is missing in {info['missing_pct']:.1f}% of rows (> "
                                                   f"{MANY_MISSING:.0%}): check how it was collected, or drop it"))
        elif flag == "infinite":
            out.append(_warn("infinite", name, f"{name!r} holds {info['stats']['infinite']:,} infinite values: replace them "
                                               "(e.g. with missing values) before training"))
    return out


# ------------------------------------------------------------------------------------------------ duplicates
def _row_hash(frame: pd.DataFrame) -> np.ndarray:
    if frame.shape[1] == 0:
        return np.zeros(len(frame), dtype=np.uint64)
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def _duplicates(df: pd.DataFrame, h: np.ndarray) -> dict:
    dup = pd.Series(h).duplicated(keep="first").to_numpy()
    n_dup = int(dup.sum())
    examples = []
    for hv in pd.unique(h[dup])[:EXAMPLES]:
        rows = np.flatnonzero(h == hv)
        examples.append({"rows": rows[:10].tolist(), "count": int(rows.size),
                         "values": {c: _display(df[c].iat[rows[0]]) for c in df.columns}})
    return {"rows": n_dup, "pct": _pct(n_dup, len(h)), "groups": int(pd.unique(h[dup]).size), "examples": examples}


def _duplicates_across_split(hashable: dict, cols: list[str], pos: np.ndarray, y_enc: np.ndarray, classification: bool,
                             seed: int = 0) -> dict:
    """Feature vectors that occur more than once, and how many of them forgeml's default split puts on both sides."""
    from forgeml.config import SplitConfig
    from forgeml.data.split import split_indices

    cfg = SplitConfig(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train, val, test = split_indices(y_enc, classification, cfg)
    side = np.zeros(len(pos), dtype=np.int8)  # 0 train, 1 validation, 2 test
    side[val], side[test] = 1, 2
    h = _row_hash(pd.DataFrame({c: hashable[c].iloc[pos].reset_index(drop=True) for c in cols}))
    _, inv, counts = np.unique(h, return_inverse=True, return_counts=True)
    in_train = np.bincount(inv, weights=side == 0, minlength=counts.size) > 0
    in_heldout = np.bincount(inv, weights=side > 0, minlength=counts.size) > 0
    dup_vec = counts >= 2
    seen = in_train[inv]
    pairs = pd.DataFrame({"h": h, "y": y_enc}).drop_duplicates()
    conflicting = int((pairs["h"].value_counts() > 1).sum())
    return {
        "features": cols,
        "split": f"train {1 - cfg.val - cfg.test:.0%} / validation {cfg.val:.0%} / test {cfg.test:.0%}, seed {cfg.seed}"
                 + (", stratified" if classification and cfg.stratify else ""),
        "rows": int(len(pos)), "duplicated_vectors": int(dup_vec.sum()), "rows_in_duplicates": int(counts[dup_vec].sum()),
        "straddling_vectors": int((in_train & in_heldout).sum()),
        "heldout_rows_seen_in_train": int((seen & (side > 0)).sum()),
        "test_rows_seen_in_train": int((seen & (side == 2)).sum()),
        "conflicting_vectors": conflicting,
    }


# ------------------------------------------------------------------------------------------------ target
def _class_counts(y: pd.Series) -> pd.Series:
    """Rows per class, keyed as training keys labels (schema.category_keys: 1, 1.0 and '1' are one class), largest first."""
    from forgeml.data.schema import canonical

    counts = y.value_counts(dropna=True)  # vectorized; only the distinct values go through canonical()
    keys = [str(canonical(v)) for v in counts.index]
    return counts.groupby(keys, sort=False).sum().sort_values(ascending=False, kind="stable")


def encode_target(y: pd.Series, task: str) -> np.ndarray:
    """The target as training encodes it (forgeml.tasks ... encode), computed per distinct value for classification."""
    from forgeml.tasks import fit_task

    fitted = fit_task(task, y)
    if task != "classification":
        return fitted.encode(y)
    from forgeml.data.schema import canonical

    index = {str(v): i for i, v in enumerate(fitted.labels)}
    inverse, uniques = pd.factorize(y)
    return np.asarray([index[str(canonical(u))] for u in uniques], dtype=np.int64)[inverse]


def _target_summary(y: pd.Series, target: str, n: int) -> tuple[dict, Optional[str]]:
    from forgeml.data.schema import infer_task

    warns: list[dict] = []
    if y.empty:
        warns.append(_warn("target_empty", target, f"target {target!r} is entirely missing: nothing to learn from"))
        return {"_warnings": warns}, None
    task = infer_task(y)
    if task == "regression":
        return {"_warnings": warns, "stats": numeric_stats(y)}, task
    counts = _class_counts(y)
    total = int(counts.sum())
    classes = [{"label": str(k), "count": int(c), "pct": _pct(c, total)} for k, c in counts.head(30).items()]
    summary = {"_warnings": warns, "classes": classes, "classes_total": int(len(counts)), "imbalanced": False}
    if len(counts) < 2:
        warns.append(_warn("single_class", target, f"target {target!r} has a single class ({classes[0]['label']!r}): "
                                                   "classification needs at least two"))
        return summary, task
    k = len(counts)
    major, minor = counts.index[0], counts.index[-1]
    ratio = float(counts.iloc[0] / counts.iloc[-1])
    share = float(counts.iloc[-1] / total)
    share_limit = min(IMBALANCE_MIN_SHARE, 0.5 / k)
    imbalanced = share < share_limit or ratio > IMBALANCE_MAX_RATIO
    summary.update({"majority": str(major), "minority": str(minor), "ratio": ratio, "minority_share": share,
                    "share_limit": share_limit, "imbalanced": imbalanced})
    if imbalanced:
        warns.append(_warn("imbalance", target,
                           f"class imbalance in {target!r}: majority {str(major)!r} {int(counts.iloc[0]):,} rows "
                           f"({_pct(counts.iloc[0], total):.1f}%) vs minority {str(minor)!r} {int(counts.iloc[-1]):,} rows "
                           f"({share:.1%}), ratio {ratio:.1f}:1. Accuracy is misleading here (always predicting "
                           f"{str(major)!r} scores {counts.iloc[0] / total:.1%}): judge models by ROC AUC, PR AUC and per-class "
                           "recall (the training report shows them), and consider class weights or resampling"))
    return summary, task


# ------------------------------------------------------------------------------------------------ association
def _codes(col: pd.Series, kind: str) -> tuple[np.ndarray, int]:
    """Integer codes for mutual information: quantile bins for numerics, the top levels for categoricals; missing is a level."""
    if kind == "numeric":
        x = col.to_numpy(dtype=np.float64, na_value=np.nan)
        nan = ~np.isfinite(x)
        values = x[~nan]
        if values.size == 0:
            return np.zeros(len(x), dtype=np.int64), 1
        uniq = np.unique(values)
        if uniq.size <= MI_BINS:
            codes = np.searchsorted(uniq, np.where(nan, uniq[0], x))
            k = uniq.size
        else:
            edges = np.unique(np.quantile(values, np.linspace(0, 1, MI_BINS + 1)[1:-1]))
            codes = np.searchsorted(edges, np.where(nan, values[0], x), side="right")
            k = edges.size + 1
        codes = np.where(nan, k, codes)
        return codes.astype(np.int64), k + 1
    counts = col.value_counts(dropna=True)
    top = counts.index[:MI_LEVELS]
    codes = pd.Index(top).get_indexer(col).astype(np.int64)  # -1: another level, or missing
    k = len(top)
    codes = np.where(codes >= 0, codes, np.where(col.isna().to_numpy(), k + 1, k))  # k: other levels, k+1: missing
    return codes, k + 2


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def mutual_information(cx: np.ndarray, kx: int, cy: np.ndarray, ky: int) -> float:
    """Plug-in mutual information (nats) of two code arrays with the Miller-Madow bias correction, floored at 0."""
    joint = np.bincount(cx * ky + cy, minlength=kx * ky).reshape(kx, ky).astype(np.float64)
    total = joint.sum()
    px, py = joint.sum(1) / total, joint.sum(0) / total
    mi = _entropy(px) + _entropy(py) - _entropy(joint.ravel() / total)
    mi -= ((px > 0).sum() - 1) * ((py > 0).sum() - 1) / (2 * total)
    return max(0.0, mi)


def _association(df, hashable, by_name, cols, rows, y_enc, task) -> dict:
    if task == "classification":
        cy, ky = y_enc.astype(np.int64), int(y_enc.max()) + 1
    else:
        cy, ky = _codes(pd.Series(y_enc), "numeric")
    hy = _entropy(np.bincount(cy, minlength=ky) / len(cy))
    out = []
    for name in cols:
        kind = by_name[name]["type"]
        cx, kx = _codes(hashable[name].iloc[rows].reset_index(drop=True), kind)
        mi = mutual_information(cx, kx, cy, ky)
        out.append({"feature": name, "type": kind, "mi_bits": mi / math.log(2), "mi_share": mi / hy if hy > 0 else 0.0})
    return {"rows": int(len(rows)), "method": "binned mutual information", "target_entropy_bits": hy / math.log(2),
            "features": out}


# ------------------------------------------------------------------------------------------------ leakage: one feature
def _single_feature_scores(df, hashable, by_name, cols, rows, y_enc, task, seed) -> dict:
    """Each feature alone: a depth-6 tree (numeric) or a per-level lookup (categorical), fitted on 70% of a sample
    and scored on the other 30% (balanced accuracy for classification, R^2 for regression)."""
    from sklearn.metrics import balanced_accuracy_score, r2_score
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    classification = task == "classification"
    y = y_enc.astype(np.int64) if classification else y_enc.astype(np.float64)
    order = np.random.default_rng(seed + 1).permutation(len(rows))
    n_te = max(1, int(round(LEAK_HOLDOUT * len(rows))))
    te, tr = np.sort(order[:n_te]), np.sort(order[n_te:])
    y_tr, y_te = y[tr], y[te]
    metric = "balanced accuracy" if classification else "R^2"
    scores = []
    if len(tr) >= 10 and len(np.unique(y_te)) >= 2:
        for name in cols:
            kind = by_name[name]["type"]
            col = hashable[name].iloc[rows].reset_index(drop=True)
            if kind == "numeric":
                x = col.to_numpy(dtype=np.float64, na_value=np.nan)
                x = np.where(np.isinf(x), np.nan, x).reshape(-1, 1)
                tree = DecisionTreeClassifier if classification else DecisionTreeRegressor
                model = tree(max_depth=LEAK_TREE_DEPTH, random_state=0)
                model.fit(x[tr], y_tr)
                pred = model.predict(x[te])
                how = f"depth-{LEAK_TREE_DEPTH} tree"
            else:
                codes, levels = pd.factorize(col, use_na_sentinel=False)
                pred = _lookup(codes[tr], y_tr, codes[te], len(levels), classification)
                how = "per-level lookup"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                score = balanced_accuracy_score(y_te, pred) if classification else r2_score(y_te, pred)
            scores.append({"feature": name, "model": how, "score": float(score), "suspect": False})
    scores.sort(key=lambda s: -s["score"])
    return {"rows_fit": int(len(tr)), "rows_heldout": int(len(te)), "metric": metric, "threshold": LEAK_SCORE,
            "baseline": 1 / (int(y.max()) + 1) if classification else 0.0, "scores": scores}


def _lookup(c_tr: np.ndarray, y_tr: np.ndarray, c_te: np.ndarray, levels: int, classification: bool) -> np.ndarray:
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


# ------------------------------------------------------------------------------------------------ helpers
def _warn(kind: str, column: Optional[str], message: str) -> dict:
    return {"kind": kind, "column": column, "message": message}


def _pct(part, whole) -> float:
    return float(100.0 * part / whole) if whole else 0.0


def _display(value, width: int = 40) -> str:
    if isinstance(value, (bytes, np.ndarray)):
        shape = "x".join(map(str, value.shape)) if isinstance(value, np.ndarray) else f"{len(value)} bytes"
        return f"<array {shape}>"
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return "(missing)"
    text = str(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _jsonable(obj):
    """numpy scalars and NaN/inf made plain JSON values (None for NaN/inf)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj
