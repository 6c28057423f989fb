"""Data-quality profile of a table before training: types, missing values, duplicates, outliers, class balance,
the features most associated with the target, and leakage suspects.

Everything here is a pure function of the rows: ``profile`` returns a JSON-able dict that the terminal summary and
the HTML report (forgeml.profile.report) render. Types come from forgeml.features.detect and the split from
forgeml.data.split, so the profile agrees with what ``forgeml train`` would do with the same data. What is computed
for a column follows its type's tags: ``ordered`` (numbers: statistics, bins, trees), ``levels`` (compared by value:
counts, per-level lookup), ``level_codes`` (one code per level: high cardinality is flagged).

Built for large tables: whole-column work is vectorized pandas/numpy (rows are hashed for duplicates, never compared
in Python), and the expensive parts (association, single-feature models) run on a seeded row sample.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from forgeml.errors import DataError
from forgeml.features import tags_of
from forgeml.features.exclusions import column_flag, hashable
from forgeml.tasks import task_tags
from forgeml.profile.rules import ASSOCIATION_ROWS, EXAMPLES, HIGH_CARDINALITY, HIST_BINS, ID_UNIQUE, LEAK_ROWS, LEAK_SCORE, MANY_MISSING, MAX_CLASSES, MAX_FLIERS, OUTLIER_IQR, TEXT_SUFFIXES, rules  # noqa: F401
from forgeml.profile.stats import Step, numeric_stats, display, jsonable, pct, warning
from forgeml.profile.signals import association, class_counts, single_feature_scores, target_summary, encode_target  # noqa: F401

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


def load(source: str, target: Optional[str] = None, sep: Optional[str] = None,
         encoding: Optional[str] = None) -> tuple[pd.DataFrame, Optional[str]]:
    """Read the data as training does (forgeml.data.sources.read_source); check the target column exists."""
    from forgeml.data.sources import read_source

    if not source.startswith("bundled:"):
        path = Path(source).expanduser()
        if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES - {".csv", ".tsv"}:  # CSV/TSV: sniffed, checked there
            check_text_file(path)
    df, implied = read_source(source, sep, encoding)
    if len(df) == 0 or df.shape[1] == 0:
        raise DataError(f"{source} has no rows or no columns")
    target = target or implied
    if target is not None and target not in df.columns:
        raise DataError(f"target column {target!r} not found; available columns: {list(df.columns)}")
    return df, target


def profile_source(source: str, target: Optional[str] = None, step: Step = lambda msg: None, seed: int = 0,
                   sep: Optional[str] = None, encoding: Optional[str] = None) -> dict:
    """Read ``source`` as training does, then profile it; ``step`` is told what runs now (for a progress line)."""
    step(f"reading {source}")
    tic = time.perf_counter()
    df, target = load(source, target, sep, encoding)
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
    hashables = {c: hashable(df[c]) for c in df.columns}
    columns = [_column(name, df[name], hashables[name], n, name == target) for name in df.columns]
    for info in columns:
        warns += _column_warnings(info, n)
    done("columns")

    stage("duplicates", "duplicate rows (hashing)")
    features = [c for c in df.columns if c != target]
    by_name = {c["name"]: c for c in columns}
    h_all = _row_hash(pd.DataFrame(hashables))
    duplicates = _duplicates(df, h_all)
    if duplicates["rows"]:
        warns.append(warning("duplicates", None,
                           f"exact duplicate rows: {duplicates['rows']:,} ({duplicates['pct']:.2f}% of rows repeat an earlier "
                           "row in every column): drop them (pandas drop_duplicates) unless the repeats are real, separate events"))
    done("duplicates")

    missing_cells = int(sum(c["missing"] for c in columns))
    result = {
        "source": source, "rows": n, "columns": df.shape[1],
        "memory_mb": round(float(df.memory_usage(deep=False).sum()) / 1e6, 1),
        "target": target, "task": None, "rules": rules(),
        "column_info": columns,
        "missing": {"cells": missing_cells, "cells_pct": pct(missing_cells, n * df.shape[1]),
                    "columns_with_missing": sum(1 for c in columns if c["missing"])},
        "duplicates": duplicates,
        "target_summary": None, "association": None, "leakage": None,
        "warnings": warns, "seconds": seconds,
    }
    if target is None:
        return jsonable(result)

    stage("target", f"target {target!r}")
    y = df[target]
    present = y.notna().to_numpy()
    summary, task = target_summary(y[present], target, n)
    summary["missing"] = int(n - present.sum())
    result["target_summary"], result["task"] = summary, task
    if summary["missing"]:
        warns.append(warning("target_missing", target, f"{summary['missing']:,} rows have no target value "
                                                     f"({pct(summary['missing'], n):.2f}%): training drops them"))
    warns += summary.pop("_warnings")
    done("target")
    classes = summary.get("classes_total", 0)
    if "labels" in task_tags(task) and classes > MAX_CLASSES:
        warns.append(warning("too_many_classes", target,
                           f"target {target!r} has {classes:,} classes (> {MAX_CLASSES}): check it is the right column; "
                           "association and leakage checks are skipped"))
    usable = "labels" not in task_tags(task) or ("labels" in task_tags(task) and 2 <= classes <= MAX_CLASSES)
    if not usable or not features:
        return jsonable(result)

    pos = np.flatnonzero(present)
    y_enc = encode_target(y.iloc[pos].reset_index(drop=True), task)
    candidates = [c for c in features if {"ordered", "levels"} & tags_of(by_name[c]["type"])
                  and not {"constant", "empty"} & set(by_name[c]["flags"])]
    rng = np.random.default_rng(seed)
    m = min(len(pos), ASSOCIATION_ROWS)
    sample = np.sort(rng.choice(len(pos), m, replace=False)) if m < len(pos) else np.arange(len(pos))

    stage("association", f"association with the target ({m:,} {'sampled ' if m < len(pos) else ''}rows)")
    assoc = association(df, hashables, by_name, candidates, pos[sample], y_enc[sample], task)
    assoc["sampled"] = m < len(pos)
    done("association")

    stage("leakage", "leakage checks: single-feature models, duplicates across the split")
    leak_rows = sample[np.sort(rng.permutation(len(sample))[:LEAK_ROWS])] if len(sample) > LEAK_ROWS else sample
    single = single_feature_scores(df, hashables, by_name, candidates, pos[leak_rows], y_enc[leak_rows], task, seed)
    scores = {s["feature"]: s for s in single["scores"]}
    for a in assoc["features"]:
        s = scores.get(a["feature"])
        a["single_feature_score"] = None if s is None else s["score"]
    assoc["features"].sort(key=lambda a: -a["mi_bits"])
    for s in single["scores"]:
        if s["score"] is not None and s["score"] >= LEAK_SCORE:
            s["suspect"] = True
            warns.append(warning("leakage", s["feature"],
                               f"possible target leakage: {s['feature']!r} alone predicts {target!r} on held-out rows "
                               f"({single['metric']} {s['score']:.4f} >= {LEAK_SCORE}, {s['model']} fitted on "
                               f"{single['rows_fit']:,} sampled rows). Check whether it is derived from the target or only "
                               f"known after it; if so drop it (config data.features: {{{s['feature']}: ignore}})"))
    split_cols = [c for c in features if by_name[c]["type"] != "ignore" and "id_like" not in by_name[c]["flags"]]
    dup_split = _duplicates_across_split(hashables, split_cols, pos, y_enc, "labels" in task_tags(task), seed=0)
    if dup_split["straddling_vectors"]:
        d = dup_split
        warns.append(warning("leakage_duplicates", None,
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
    return jsonable(result)


# ------------------------------------------------------------------------------------------------ columns
def _column(name: str, col: pd.Series, hcol: pd.Series, n: int, is_target: bool) -> dict:
    from forgeml.features import detect

    missing = int(col.isna().sum())
    try:
        kind = detect(col)
    except DataError:
        kind = "empty"
    tags = tags_of(kind)
    counts = hcol.value_counts(dropna=True, sort=True) if "ordered" not in tags else None
    unique = len(counts) if counts is not None else int(hcol.nunique(dropna=True))
    info = {"name": name, "dtype": str(col.dtype), "type": kind, "role": "target" if is_target else "feature",
            "missing": missing, "missing_pct": pct(missing, n), "unique": unique, "flags": [], "stats": None, "top": None}
    if "ordered" in tags and not is_target:  # the target's distribution is in the target summary
        info["stats"] = numeric_stats(col)
    elif counts is not None and len(counts):
        info["top"] = [[display(v), int(c)] for v, c in counts.head(3).items()]
    if is_target:
        return info
    flags = info["flags"]
    if kind == "empty":
        flags.append("empty")
    elif (flag := column_flag(col, tags, unique)) is not None:
        flags.append(flag)
    elif "level_codes" in tags and unique > HIGH_CARDINALITY:
        flags.append("high_cardinality")
    if kind != "empty" and missing > MANY_MISSING * n:
        flags.append("many_missing")
    if info["stats"] and info["stats"]["infinite"]:
        flags.append("infinite")
    return info


def _column_warnings(info: dict, n: int) -> list[dict]:
    name, out = info["name"], []
    for flag in info["flags"]:
        if flag == "empty":
            out.append(warning("empty", name, f"{name!r} is entirely missing: training stops on it; drop the column or set "
                                            f"data.features: {{{name}: ignore}}"))
        elif flag == "constant":
            rest = " apart from missing values" if info["missing"] else ""
            out.append(warning("constant", name, f"{name!r} is constant (a single value{rest}): it cannot help the model; "
                                               f"drop it or set data.features: {{{name}: ignore}}"))
        elif flag == "id_like":
            out.append(warning("id_like", name, f"{name!r} looks like an ID (a distinct {info['dtype']} value in "
                                              f"{info['unique'] / n:.1%} of rows): it "
                                              f"cannot generalize to new rows and may leak row order; drop it or set "
                                              f"data.features: {{{name}: ignore}}"))
        elif flag == "high_cardinality":
            out.append(warning("high_cardinality", name,
                             f"{name!r} is a high-cardinality categorical ({info['unique']:,} distinct values > {HIGH_CARDINALITY}): "
                             "rare levels are learned from few rows and training keeps only the data.max_categories (1000) most "
                             "frequent; group rare levels, or ignore the column if it is a free-form key"))
        elif flag == "many_missing":
            out.append(warning("many_missing", name, f"{name!r} is missing in {info['missing_pct']:.1f}% of rows (> "
                                                   f"{MANY_MISSING:.0%}): check how it was collected, or drop it"))
        elif flag == "infinite":
            out.append(warning("infinite", name, f"{name!r} holds {info['stats']['infinite']:,} infinite values: replace them "
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
                         "values": {c: display(df[c].iat[rows[0]]) for c in df.columns}})
    return {"rows": n_dup, "pct": pct(n_dup, len(h)), "groups": int(pd.unique(h[dup]).size), "examples": examples}


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
