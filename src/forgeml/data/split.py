"""Seeded train/validation/test split: stratified for classification, by group (rows of one group never straddle
splits) or by time (the latest rows are the test split), and the K-fold variants that `forgeml cv` uses."""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, GroupShuffleSplit, KFold, StratifiedKFold, train_test_split

from forgeml.errors import DataError


MIN_TRAIN_ROWS = 5  # a holdout split needs at least this many training rows ...
MIN_HELDOUT_ROWS = 1  # ... and a row in each of validation and test


def rows_needed(cfg) -> int:
    """The fewest rows a train/validation/test split with these fractions can give enough rows each."""
    return int(max(np.ceil(MIN_TRAIN_ROWS / (1 - cfg.val - cfg.test) - 1e-9), np.ceil(MIN_HELDOUT_ROWS / cfg.val - 1e-9),
                   np.ceil(MIN_HELDOUT_ROWS / cfg.test - 1e-9)))


def fold_rows_enough(n: int, cfg) -> bool:
    """Whether every one of cfg.folds folds has a test row and, after validation is split off the rest, enough rows to
    train (the fold with the most test rows, as KFold or the expanding time windows make them)."""
    share = cfg.val / (1 - cfg.test)  # validation's share of the rows outside the test fold (as split_indices)
    if cfg.time_col:
        past = int(np.linspace(0, n, cfg.folds + 2).astype(int)[1])  # fold 1 trains on the first block only
        return n >= cfg.folds + 1 and past - max(1, int(round(past * share))) >= MIN_TRAIN_ROWS
    rest = n - int(np.ceil(n / cfg.folds))
    val = int(np.ceil(rest * share))
    return n // cfg.folds >= MIN_HELDOUT_ROWS and val >= MIN_HELDOUT_ROWS and rest - val >= MIN_TRAIN_ROWS


def fold_rows_needed(cfg) -> int:
    """The fewest rows K-fold cross-validation with these fractions can split (fold_rows_enough)."""
    return next(n for n in range(cfg.folds, 1_000_000) if fold_rows_enough(n, cfg))


def _other_folds(n: int, cfg) -> str:
    """', or use --folds J': the fold count nearest the requested one that these rows allow (none: '')."""
    works = [j for j in range(2, n + 1) if fold_rows_enough(n, cfg.model_copy(update={"folds": j, "fold": 0}))]
    return f", or use --folds {min(works, key=lambda j: (abs(j - cfg.folds), j))}" if works else ""


def check_enough_rows(n: int, cfg) -> None:
    """Refuse a table too small for a train/validation/test split, or for cross-validation's folds (group folds are
    checked by their number of groups instead)."""
    if cfg.folds is not None:
        if not cfg.group_col and not fold_rows_enough(n, cfg):
            k = cfg.folds
            how = ("each fold tests on the next of its time-ordered blocks and trains on the blocks before it" if cfg.time_col
                   else f"each fold tests on about 1/{k} of the rows")
            raise DataError(f"the table has {n} usable rows, too few for {k}-fold cross-validation: {how}, with "
                            f"{cfg.val / (1 - cfg.test):.0%} of its other rows for validation; {k} folds need at least "
                            f"{fold_rows_needed(cfg)} rows ({MIN_TRAIN_ROWS} to train and at least {MIN_HELDOUT_ROWS} "
                            f"each to validate and test in every fold); add rows{_other_folds(n, cfg)}")
        return
    if n < rows_needed(cfg):
        raise DataError(f"the table has {n} usable rows, too few to split: a train/validation/test split of "
                        f"{1 - cfg.val - cfg.test:.0%}/{cfg.val:.0%}/{cfg.test:.0%} needs at least {rows_needed(cfg)} rows "
                        f"({MIN_TRAIN_ROWS} to train and at least {MIN_HELDOUT_ROWS} each to validate and test); add rows or change "
                        "split.val / split.test")


def split_indices(y: np.ndarray, classification: bool, cfg, groups: Optional[np.ndarray] = None,
                  times: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if times is not None:
        return _by_time(times, cfg)
    idx = np.arange(len(y))
    if groups is not None and cfg.folds is None and len(np.unique(groups)) < 3:
        raise DataError(f"split.group_col has {len(np.unique(groups))} distinct group(s); a group split needs at least 3 "
                        "(one each for training, validation and test)")
    strat = y if (classification and cfg.stratify and groups is None) else None
    if strat is not None and np.bincount(y).min(initial=len(y)) < 3:
        warnings.warn("a class has fewer than 3 rows: splitting without stratification")
        strat = None
    if cfg.folds is not None:
        rest, test = _fold(idx, y, strat, groups, cfg)
    else:
        rest, test = _holdout(idx, strat, groups, cfg.test, cfg.seed)
    train, val = _holdout(rest, None if strat is None else y[rest], None if groups is None else groups[rest],
                          cfg.val / (1 - cfg.test), cfg.seed)
    return np.sort(train), np.sort(val), np.sort(test)


def _holdout(idx, strat, groups, size: float, seed: int):
    """idx split in two, the second part about `size` of it."""
    if groups is not None:
        if len(np.unique(groups)) < 2:  # the whole split checked for 3; a test split over 2 of 3 groups leaves 1
            raise DataError("split.test takes all but one group of split.group_col; lower split.test or add groups")
        a, b = next(GroupShuffleSplit(n_splits=1, test_size=size, random_state=seed).split(idx, groups=groups))
        return idx[a], idx[b]
    try:
        return tuple(train_test_split(idx, test_size=size, random_state=seed, stratify=strat))
    except ValueError:  # more classes than rows in a split: stratification is impossible
        if strat is None:
            raise
        warnings.warn("too few rows per class to stratify the split: splitting without stratification")
        return tuple(train_test_split(idx, test_size=size, random_state=seed))


def _fold(idx, y, strat, groups, cfg):
    if groups is not None:
        if len(np.unique(groups)) < cfg.folds:
            raise DataError(f"{cfg.folds} folds need at least {cfg.folds} groups; split.group_col has {len(np.unique(groups))}")
        splitter = GroupKFold(n_splits=cfg.folds)
    elif strat is not None and np.bincount(y).min() >= cfg.folds:
        splitter = StratifiedKFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed)
    else:
        if strat is not None:
            warnings.warn(f"a class has fewer than {cfg.folds} rows: folds are not stratified")
        splitter = KFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed)
    rest, test = list(splitter.split(idx, y, groups))[cfg.fold]
    return idx[rest], idx[test]


def _by_time(times: np.ndarray, cfg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Oldest rows train, then validation, latest test. With folds: expanding-window folds (fold k tests on block
    k+1 of K+1 time-ordered blocks, trained on everything before it)."""
    order = np.argsort(times, kind="stable")
    n = len(order)
    if cfg.folds is not None:
        edges = np.linspace(0, n, cfg.folds + 2).astype(int)
        past, test = order[: edges[cfg.fold + 1]], order[edges[cfg.fold + 1]: edges[cfg.fold + 2]]
        n_val = max(1, int(round(len(past) * cfg.val / (1 - cfg.test))))
        train, val = past[:-n_val], past[-n_val:]
    else:
        n_test, n_val = max(1, int(round(n * cfg.test))), max(1, int(round(n * cfg.val)))
        train, val, test = order[: n - n_test - n_val], order[n - n_test - n_val: n - n_test], order[n - n_test:]
    if len(train) < 2:
        raise DataError(f"the time split leaves {len(train)} training row(s); use fewer folds or smaller split fractions")
    return np.sort(train), np.sort(val), np.sort(test)


def parse_times(col: pd.Series) -> np.ndarray:
    """Sortable times from a numeric (year, epoch) or date/time column; unparseable or missing values are errors."""
    if col.isna().any():
        rows = np.flatnonzero(col.isna().to_numpy())
        raise DataError(f"split.time_col {col.name!r} is missing in {len(rows)} row(s) (first: row {rows[0]}); "
                        "every row needs a time to be ordered")
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return col.to_numpy(dtype=np.float64)
    if pd.api.types.is_datetime64_any_dtype(col):
        return col.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format": the check below reports real failures
        parsed = pd.to_datetime(col.astype(str), errors="coerce", utc=True, format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(f"split.time_col {col.name!r} does not parse as dates/times: row {first} holds {col.iloc[first]!r} "
                        f"({int(bad.sum())} row(s) fail); use ISO dates such as 2024-05-01 or numbers such as years")
    return parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
