"""Numeric columns: filled, clipped and scaled as data.clean says (forgeml.data.clean); NaN and inf mean missing."""
from __future__ import annotations

import math

import numpy as np

from forgeml.core import FEATURES, NUMBER_DATATYPES, FeatureType
from forgeml.data.clean import SCALED_LIMIT, apply_numeric, fit_numeric, numeric_steps, numeric_width

FLOAT32_MAX = 3.4e38
INTERNAL = "numeric_std"  # the scaled values inside the ONNX graph (the model's input)


def numeric_frame(df, columns: list[str]) -> np.ndarray:
    """The columns as float32 [N, k], NaN for missing; a value that is not a number is refused, naming its row."""
    import pandas as pd

    from forgeml.errors import DataError

    block = df[columns]
    converted = block.apply(pd.to_numeric, errors="coerce")
    bad = converted.isna() & block.notna()
    if bad.to_numpy().any():
        col = bad.any(axis=0).idxmax()
        row = bad[col].idxmax()
        raise DataError(f"column {col!r} must be numeric, but row {row} holds {block.at[row, col]!r}")
    return converted.to_numpy(dtype=np.float32, na_value=np.nan)


def finite(v) -> bool:
    try:
        return math.isfinite(v) and abs(v) <= FLOAT32_MAX
    except OverflowError:  # an integer too large for a float
        return False


def numeric_spread(state: dict) -> np.ndarray:
    """Standard deviation of each encoded numeric input over the training split, as far as the scaling says it:
    1 for standard scaling, IQR/1.35 -> 1/1.35 for robust, a quarter of the range for min-max (a normal spanning the
    range), 1 raw unit for no scaling; 0 for missing-value indicators (kept at 'not missing')."""
    sd = {"robust": 1 / 1.349, "minmax": 0.25}.get(state.get("scale_method", "standard"), 1.0)
    return np.concatenate([np.full(len(state["columns"]), sd), np.zeros(len(state.get("indicator", [])))]).astype(np.float32)


@FEATURES.register("numeric", order=10, tags={"ordered"})
class Numeric(FeatureType):
    """``ordered``: its values are numbers with an order (the profile bins them, fits trees on them, reports stats)."""

    tensor_datatype, tensor_accepts = "FP32", NUMBER_DATATYPES  # the Open Inference Protocol: any number type

    # ---- baseline, augmentation, SMOTE (forgeml.core.FeatureType): a table block; noise and mixup; interpolated
    baseline_block = "table"
    augment = "continuous"
    smote = "continuous"

    # ---- detection (forgeml.features.detect): a numeric dtype, booleans aside (those are categorical)
    detect_order = 10

    def detect(self, values):
        import pandas as pd

        return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)

    def fit(self, df, columns, data_cfg, context):
        state = fit_numeric(numeric_frame(df, columns), columns, data_cfg.clean, context.get("clip_bounds"))
        privacy = context.get("privacy")
        if privacy is not None and privacy.bounds:  # declared ranges replace what was learned from the rows
            from forgeml.features.private import bounded_numeric

            state = bounded_numeric(state, privacy.bounds)
        return state

    def transform(self, df, state):
        return {"numeric": apply_numeric(numeric_frame(df, state["columns"]), state)}

    def shapes(self, state):
        return {"numeric": numeric_width(state) if state else 0}

    def model_inputs(self, state):
        return ["numeric"]

    def raw_inputs(self, state):
        return [{"name": "numeric", "dtype": "float32", "shape": ["batch", len(state["columns"])], "columns": state["columns"],
                 "how": "raw values in column order; NaN means missing"}]

    def feeds(self, df, state):
        return {"numeric": numeric_frame(df, state["columns"])}

    def encode(self, rows, state):
        from forgeml.features.records import InputError, printable

        columns = state["columns"]
        out = np.empty((len(rows), len(columns)), dtype=np.float32)
        for j, c in enumerate(columns):
            for i, r in enumerate(rows):
                v = r.get(c)
                if v is None:
                    out[i, j] = np.nan
                elif isinstance(v, (int, float)) and not isinstance(v, bool) and finite(v):
                    out[i, j] = v
                else:
                    raise InputError(f"must be a finite number or null, got {printable(repr(v))}"[:200], c, i)
        return {"numeric": out}

    def graph(self, state, g):
        n = len(state["columns"])
        g.add_input("numeric", "FLOAT", ["batch", n])
        steps = numeric_steps(state)
        row = lambda a: a.astype(np.float32)[None, :]  # noqa: E731
        # NaN and inf mean "missing": filled, clipped, scaled, then the missing indicators (forgeml.data.clean)
        g.node("IsNaN", ["numeric"], ["pre/nan"], "pre/isnan")
        g.node("IsInf", ["numeric"], ["pre/inf"], "pre/isinf")
        g.node("Or", ["pre/nan", "pre/inf"], ["pre/missing"], "pre/or")
        g.node("Where", ["pre/missing", g.const("pre/numeric_fill", row(steps["fill"])), "numeric"], ["pre/filled"], "pre/impute")
        filled = "pre/filled"
        if "lo" in steps:
            g.node("Max", [filled, g.const("pre/numeric_lo", row(steps["lo"]))], ["pre/above_lo"], "pre/clip_lo")
            g.node("Min", ["pre/above_lo", g.const("pre/numeric_hi", row(steps["hi"]))], ["pre/clipped"], "pre/clip_hi")
            filled = "pre/clipped"
        scaled = INTERNAL if not len(steps["indicator"]) else "pre/scaled"
        g.node("Sub", [filled, g.const("pre/numeric_center", row(steps["center"]))], ["pre/centered"], "pre/sub")
        g.node("Div", ["pre/centered", g.const("pre/numeric_scale", row(steps["scale"]))], ["pre/divided"], "pre/div")
        limit = np.float32(SCALED_LIMIT)  # as forgeml.data.clean.apply_numeric
        g.node("Max", ["pre/divided", g.const("pre/scaled_lo", -limit)], ["pre/scaled_above"], "pre/scaled_lo")
        g.node("Min", ["pre/scaled_above", g.const("pre/scaled_hi", limit)], [scaled], "pre/scaled_hi")
        if len(steps["indicator"]):
            g.node("Gather", ["pre/missing", g.const("pre/indicator_cols", steps["indicator"])], ["pre/ind_bool"],
                   "pre/indicator_gather", axis=1)
            g.node("Cast", ["pre/ind_bool"], ["pre/ind"], "pre/indicator_cast", to=g.TensorProto.FLOAT)
            g.node("Concat", [scaled, "pre/ind"], [INTERNAL], "pre/indicator_concat", axis=1)
        return {"numeric": INTERNAL}

    def flat(self, state, g, onehot):
        return [INTERNAL]

    def example(self, shapes, generator):
        import torch

        return {"numeric": torch.randn(3, shapes["numeric"], generator=generator)}

    def field(self, state, column):
        typical = float(numeric_steps(state)["fill"][state["columns"].index(column)])  # what a missing value becomes
        return {"name": column, "type": self.name,
                "schema": {"type": ["number", "null"], "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX,
                           "description": "a number (at most 3.4e38 either way: float32); null means missing",
                           "examples": [float(f"{typical:.6g}")]}}

    # ---- explanations (forgeml.core.FeatureType): one attribution per column, the typical value is the fill value
    def input_owners(self, state):
        return {"numeric": [*state["columns"], *state.get("indicator", [])]}  # then the missing-value indicators

    def typical_values(self, state):
        return dict(zip(state["columns"], state.get("fill", state.get("mean"))))  # what a missing value becomes

    def switched_off(self, state, key, centre, like):
        import torch

        return centre + torch.randn(like.shape, dtype=like.dtype) * torch.from_numpy(numeric_spread(state))
