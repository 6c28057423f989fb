"""A typed input column, the check that the target is there, and the keys of categorical values and labels.
Column types are detected by the feature types (forgeml.features.detect), the task by the task families
(forgeml.tasks.infer_task)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the serving process encodes requests without pandas
    import pandas as pd

from forgeml.errors import DataError


@dataclass(frozen=True)
class Feature:
    name: str
    type: str  # a registered feature type's name (forgeml.features)

    def to_json(self) -> dict:
        return asdict(self)


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


def canonical(value):
    """The key of one categorical value or label: 1, 1.0 and np.int64(1) are the same category."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def category_keys(col: pd.Series) -> pd.Series:
    """String keys for a column, vectorized where the dtype allows: the same at fit, predict and serve time."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_integer_dtype(col):
        return col.astype(str)
    if pd.api.types.is_float_dtype(col):
        out = col.astype(str)
        integral = col.notna() & (col % 1 == 0)
        out[integral] = col[integral].astype("int64").astype(str)
        return out
    return col.map(lambda v: str(canonical(v)))
