"""Date and date-time columns (datetime64 values, or ISO 8601 strings): numeric parts per column (year, month, day of
month, day of week, and the hour of day when the training times vary), standardized with the training split's mean
and standard deviation; a missing date gets the training mean (0 after scaling). Dates with an offset are converted
to UTC. The model's input ``datetime`` is float32 [batch, parts]; the ONNX graph takes the raw parts and standardizes
them itself."""
from __future__ import annotations

import re

import numpy as np

from forgeml.core import FEATURES, FeatureType

INTERNAL = "datetime_std"  # the standardized parts inside the ONNX graph (the model's input)
ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?")
DATE_PARTS = ["year", "month", "day", "weekday"]
DETECT_SHARE = 0.95  # an object column is dates when this share of a sample of its values parse as ISO 8601
SAMPLE = 2000
PART_HELP = {"year": "year", "month": "month 1-12", "day": "day of month 1-31", "weekday": "day of week, Monday = 0",
             "hour": "hour of day 0-24, with minutes and seconds as its fraction"}


def parse_dates(col):
    """A column -> datetime64 (UTC, without the offset); NaT where missing or not an ISO 8601 date."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(col):
        out = pd.Series(col)
        return out.dt.tz_convert("UTC").dt.tz_localize(None) if out.dt.tz is not None else out
    text = pd.Series(col, dtype=object).map(lambda v: v.strip() if isinstance(v, str) else None)
    text = text.where(text.map(lambda v: bool(v) and ISO.fullmatch(v) is not None), None)
    return pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True).dt.tz_localize(None)


def parts_of(dates, parts: list[str]) -> np.ndarray:
    """datetime64 values -> float64 [N, len(parts)], NaN where missing."""
    dt = dates.dt
    values = {"year": dt.year, "month": dt.month, "day": dt.day, "weekday": dt.day_of_week,
              "hour": dt.hour + dt.minute / 60 + dt.second / 3600}
    return np.stack([values[p].to_numpy(dtype=np.float64, na_value=np.nan) for p in parts], axis=1)


def checked_dates(df, column: str):
    """The column parsed; a value that is not a date is refused, naming its row (as numeric columns do)."""
    from forgeml.errors import DataError

    dates = parse_dates(df[column])
    bad = dates.isna().to_numpy() & df[column].notna().to_numpy()
    if bad.any():
        row = df.index[int(np.argmax(bad))]
        raise DataError(f"column {column!r} must hold ISO 8601 dates (2021-03-04, 2021-03-04 10:20:00), but row {row} "
                        f"holds {df[column].loc[row]!r}")
    return dates


def raw_parts(df, state: dict) -> np.ndarray:
    """Rows -> the ONNX graph's raw input: float32 [N, parts], NaN for a missing date."""
    blocks = [parts_of(checked_dates(df, c), parts) for c, parts in zip(state["columns"], state["parts"])]
    return np.concatenate(blocks, axis=1).astype(np.float32) if blocks else np.zeros((len(df), 0), np.float32)


def standardized(raw: np.ndarray, state: dict) -> np.ndarray:
    """As the ONNX graph computes it, in float32: missing -> the training mean, then (x - mean) / scale."""
    mean, scale = np.asarray(state["mean"], np.float32)[None, :], np.asarray(state["scale"], np.float32)[None, :]
    return ((np.where(np.isnan(raw), mean, raw) - mean) / scale).astype(np.float32)


@FEATURES.register("datetime", order=25)
class DateTime(FeatureType):
    """Dates become numbers the model can compare: no tags (the profile treats them as their own kind)."""

    # ---- baseline, augmentation, SMOTE (forgeml.core.FeatureType): the trees' table block; not augmented; SMOTE
    # refuses it (an interpolated date part is not a date)
    baseline_block = "table"
    augment = None
    smote = None

    # ---- detection (forgeml.features.detect): datetime64 values, or strings of which 95% are ISO 8601 dates; asked
    # after numeric and image and before text and categorical
    detect_order = 25

    def detect(self, values):
        import pandas as pd

        if pd.api.types.is_datetime64_any_dtype(values):
            return True
        if values.dtype != object and not pd.api.types.is_string_dtype(values):
            return False
        sample = values.iloc[:SAMPLE] if len(values) > SAMPLE else values
        if not sample.map(lambda v: isinstance(v, str)).all():
            return False
        return bool(parse_dates(sample).notna().mean() >= DETECT_SHARE)

    def fit(self, df, columns, data_cfg, context):
        parts, means, scales, examples, kinds = [], [], [], [], []
        for c in columns:
            dates = checked_dates(df, c)
            valid = dates.dropna()
            timed = bool(len(valid) and (valid.dt.normalize() != valid).any())  # times of day vary
            names = DATE_PARTS + (["hour"] if timed else [])
            values = parts_of(dates, names)
            mean = np.nan_to_num(np.nanmean(values, axis=0)) if len(valid) else np.zeros(len(names))
            sd = np.nanstd(values, axis=0) if len(valid) else np.ones(len(names))
            parts.append(names)
            means += [float(np.float32(m)) for m in mean]
            scales += [float(np.float32(s)) if s > 1e-6 else 1.0 for s in np.nan_to_num(sd)]
            middle = valid.sort_values().iloc[len(valid) // 2] if len(valid) else None
            examples.append(None if middle is None else (middle.isoformat() if timed else middle.date().isoformat()))
            kinds.append("datetime64 values" if getattr(df[c].dtype, "kind", "") == "M" else
                         ("ISO date-times" if timed else "ISO dates"))
        return {"columns": list(columns), "parts": parts, "mean": means, "scale": scales, "examples": examples,
                "read_as": kinds}

    def transform(self, df, state):
        return {"datetime": standardized(raw_parts(df, state), state)}

    def shapes(self, state):
        return {"datetime": sum(len(p) for p in state["parts"]) if state else 0}

    def model_inputs(self, state):
        return ["datetime"]

    def raw_inputs(self, state):
        order = [f"{c}.{p}" for c, parts in zip(state["columns"], state["parts"]) for p in parts]
        return [{"name": "datetime", "dtype": "float32", "shape": ["batch", len(order)], "columns": state["columns"],
                 "parts": order,
                 "how": "per column, the parts of its date in this order (UTC when it has an offset): "
                        + "; ".join(f"{p}: {PART_HELP[p]}" for p in dict.fromkeys(x for ps in state["parts"] for x in ps))
                        + "; NaN for every part of a missing date"}]

    def feeds(self, df, state):
        return {"datetime": raw_parts(df, state)}

    def encode(self, rows, state):
        import pandas as pd

        from forgeml.features.records import InputError, printable

        blocks = []
        for c, parts in zip(state["columns"], state["parts"]):
            column = []
            for i, r in enumerate(rows):
                v = r.get(c)
                if v is not None and not (isinstance(v, str) and ISO.fullmatch(v.strip())):
                    raise InputError(f"must be an ISO 8601 date or date-time string (2021-03-04, 2021-03-04T10:20:00) "
                                     f"or null, got {printable(repr(v))}"[:200], c, i)
                column.append(v)
            dates = parse_dates(pd.Series(column, dtype=object))
            bad = dates.isna().to_numpy() & pd.Series(column, dtype=object).notna().to_numpy()
            if bad.any():
                i = int(np.argmax(bad))
                raise InputError(f"is not a valid date: {printable(repr(column[i]))}"[:200], c, i)
            blocks.append(parts_of(dates, parts))
        width = sum(len(p) for p in state["parts"])
        return {"datetime": np.concatenate(blocks, axis=1).astype(np.float32) if blocks else np.zeros((len(rows), width), np.float32)}

    def graph(self, state, g):
        mean = np.asarray(state["mean"], np.float32)[None, :]
        g.add_input("datetime", "FLOAT", ["batch", mean.shape[1]])
        g.node("IsNaN", ["datetime"], ["pre/datetime_nan"], "pre/datetime_isnan")
        g.node("Where", ["pre/datetime_nan", g.const("pre/datetime_mean", mean), "datetime"], ["pre/datetime_filled"],
               "pre/datetime_fill")
        g.node("Sub", ["pre/datetime_filled", "pre/datetime_mean"], ["pre/datetime_centered"], "pre/datetime_sub")
        g.node("Div", ["pre/datetime_centered", g.const("pre/datetime_scale", np.asarray(state["scale"], np.float32)[None, :])],
               [INTERNAL], "pre/datetime_div")
        return {"datetime": INTERNAL}

    def flat(self, state, g, onehot):
        return [INTERNAL]

    def example(self, shapes, generator):
        import torch

        return {"datetime": torch.randn(3, shapes["datetime"], generator=generator)}

    def field(self, state, column):
        j = state["columns"].index(column)
        schema = {"type": ["string", "null"],
                  "description": "an ISO 8601 date or date-time (2021-03-04, 2021-03-04T10:20:00; an offset is "
                                 "converted to UTC); null means missing"}
        if state["examples"][j]:
            schema["examples"] = [state["examples"][j]]
        return {"name": column, "type": self.name, "schema": schema, "parts": state["parts"][j]}

    def note(self, state, column):
        j = state["columns"].index(column)
        return f"{state['read_as'][j]} -> datetime ({', '.join(state['parts'][j])})"

    # ---- explanations (forgeml.core.FeatureType): one attribution per column, summed over its parts
    def input_owners(self, state):
        return {"datetime": [c for c, parts in zip(state["columns"], state["parts"]) for _ in parts]}

    def switched_off(self, state, key, centre, like):
        import torch

        return centre + torch.randn(like.shape, dtype=like.dtype)  # parts are standardized: one sd of noise
