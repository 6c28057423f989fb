"""Infer feature types (numeric, categorical, text, image) and the task; validate the target."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from forgeml.data.sources import IMAGE_EXTS
from forgeml.errors import DataError

MAX_CLASSES_FOR_INT_TARGET = 20


@dataclass(frozen=True)
class Feature:
    name: str
    type: str  # numeric | categorical | text | image

    def to_json(self) -> dict:
        return asdict(self)


def infer_type(col: pd.Series) -> str:
    values = col.dropna()
    if values.empty:
        raise DataError(
            f"column {col.name!r} is entirely missing; drop it or set data.features.{col.name}: ignore"
        )
    first = values.iloc[0]
    if isinstance(first, np.ndarray):
        return "image"
    if pd.api.types.is_bool_dtype(col):
        return "categorical"
    if pd.api.types.is_numeric_dtype(col):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(col):
        return "ignore"
    as_str = values.astype(str)
    if as_str.str.lower().str.endswith(tuple(IMAGE_EXTS)).mean() > 0.9:
        return "image"
    words = as_str.str.count(r"\s+") + 1
    unique_ratio = as_str.nunique() / len(as_str)
    if words.mean() >= 4 or (unique_ratio > 0.5 and as_str.str.len().mean() > 30):
        return "text"
    return "categorical"


def infer_features(df: pd.DataFrame, target: str, overrides: dict[str, str]) -> list[Feature]:
    unknown = sorted(set(overrides) - set(df.columns))
    if unknown:
        raise DataError(f"data.features names columns that are not in the data: {unknown}; columns: {list(df.columns)}")
    features = []
    for name in df.columns:
        if name == target:
            continue
        kind = overrides.get(name) or infer_type(df[name])
        if kind != "ignore":
            features.append(Feature(name, kind))
    if not features:
        raise DataError(f"no input features left besides the target {target!r}")
    images = [f.name for f in features if f.type == "image"]
    if len(images) > 1:
        raise DataError(f"one image column is supported per model, found {images}; set the others to ignore in data.features")
    return features


def check_target(df: pd.DataFrame, target: str | None) -> pd.DataFrame:
    """The target exists; rows without a target are dropped (they cannot be learned from)."""
    if not target:
        raise DataError(f"no target given; pass --target with one of the columns: {list(df.columns)}")
    if target not in df.columns:
        raise DataError(f"target column {target!r} not found; available columns: {list(df.columns)}")
    missing = df[target].isna()
    if missing.all():
        raise DataError(f"target column {target!r} is entirely missing")
    return df.loc[~missing].reset_index(drop=True) if missing.any() else df


def infer_task(y: pd.Series) -> str:
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    values = y.to_numpy()
    integral = np.all(np.mod(values, 1) == 0)
    return "classification" if integral and y.nunique() <= MAX_CLASSES_FOR_INT_TARGET else "regression"


def check_task(y: pd.Series, task: str) -> None:
    if task == "classification":
        n = y.nunique()
        if n < 2:
            value = y.iloc[0].item() if hasattr(y.iloc[0], "item") else y.iloc[0]
            raise DataError(
                f"target {y.name!r} has a single class ({value!r}); classification needs at least two: "
                "check the target column, or use --task regression for a numeric target"
            )
    elif task == "regression":
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            sample = y.dropna().astype(str).unique()[:3].tolist()
            raise DataError(
                f"regression needs a numeric target, but {y.name!r} holds values like {sample}; "
                "use --task classification or convert the column to numbers"
            )


def canonical(value):
    """The key of one categorical value or label: 1, 1.0 and np.int64(1) are the same category."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def category_keys(col: pd.Series) -> pd.Series:
    """String keys for a column, vectorized where the dtype allows: the same at fit, predict and serve time."""
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_integer_dtype(col):
        return col.astype(str)
    if pd.api.types.is_float_dtype(col):
        out = col.astype(str)
        integral = col.notna() & (col % 1 == 0)
        out[integral] = col[integral].astype("int64").astype(str)
        return out
    return col.map(lambda v: str(canonical(v)))
