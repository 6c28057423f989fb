"""Categorical columns: level codes by frequency on the training split (1..n; 0 = unseen, and missing unless
data.clean.missing.categorical is most_frequent); in ONNX an ``ai.onnx.ml.LabelEncoder`` per column."""
from __future__ import annotations

import numpy as np

from forgeml.core import FEATURES, NUMBER_DATATYPES, FeatureType
from forgeml.data.schema import canonical, category_keys

INTERNAL = "categorical_codes"
MAX_LEVELS_SHOWN = 500  # levels listed in a request field; more are left out (the page then offers a text box)


def level_codes(levels: list, missing_is_mode: bool) -> dict:
    """LabelEncoder keys -> codes (1..n; 0 = unseen); '' (missing) -> the most frequent level's code if asked."""
    keys, codes = [str(v) for v in levels], list(range(1, len(levels) + 1))
    if missing_is_mode and levels and "" not in keys:
        keys, codes = keys + [""], codes + [1]
    return {"keys_strings": keys, "values_int64s": codes}


def request_key(v) -> str:
    """The level key training uses (forgeml.data.schema.canonical: 1.0 and 1 are one level); '' for missing."""
    if v is None:
        return ""
    if isinstance(v, (str, int, float, bool)):
        return str(canonical(v))
    raise TypeError


@FEATURES.register("categorical", order=20, tags={"levels", "level_codes"})
class Categorical(FeatureType):
    """``levels``: its values are compared by value (the profile counts them and looks each up); ``level_codes``:
    each level is one code, for the data.max_categories most frequent (the profile flags a column with more)."""

    tensor_accepts = ("BYTES", "BOOL", *NUMBER_DATATYPES)  # the Open Inference Protocol: levels may be numbers, as in JSON

    # ---- baseline, augmentation, SMOTE (forgeml.core.FeatureType): a table block; codes are not augmented
    # (mixup keeps the first row's); SMOTENC treats them as nominal
    baseline_block = "table"
    smote = "nominal"

    # ---- detection (forgeml.features.detect): asked last, it claims what is left (booleans included), dates aside
    detect_order = 90

    def detect(self, values):
        import pandas as pd

        return not pd.api.types.is_datetime64_any_dtype(values)

    def fit(self, df, columns, data_cfg, context):
        levels = []
        for name in columns:
            counts = category_keys(df[name].dropna()).value_counts()
            levels.append(counts.index[: data_cfg.max_categories].tolist())
        missing = "most_frequent" if data_cfg.clean.missing.categorical == "most_frequent" else "unknown"
        return {"columns": list(columns), "levels": levels, "missing": missing}

    def transform(self, df, state):
        import pandas as pd

        codes = np.zeros((len(df), len(state["columns"])), dtype=np.int64)
        for j, (name, levels) in enumerate(zip(state["columns"], state["levels"])):
            col = df[name]
            keys = category_keys(col)
            c = pd.Index(levels).get_indexer(keys).astype(np.int64) + 1  # -1 (unseen) -> 0
            missing = col.isna().to_numpy().copy()
            if state.get("missing") == "most_frequent":  # levels are sorted by count: the mode is code 1
                missing |= (keys == "").to_numpy()  # '' is how the ONNX graph is told "missing"
                c[missing & (c == 0)] = 1 if levels else 0
            else:
                c[missing] = 0
            codes[:, j] = c
        return {"categorical": codes}

    def shapes(self, state):
        return {"categorical": [len(levels) + 1 for levels in state["levels"]] if state else []}

    def model_inputs(self, state):
        return ["categorical"]

    def raw_inputs(self, state):
        return [{"name": "categorical", "dtype": "string", "shape": ["batch", len(state["columns"])], "columns": state["columns"],
                 "how": "values as text in column order (whole numbers without '.0'); '' means missing; unseen levels are allowed"}]

    def feeds(self, df, state):
        cols = [np.where(df[c].isna().to_numpy(), "", category_keys(df[c]).to_numpy(dtype=object)) for c in state["columns"]]
        return {"categorical": np.stack(cols, axis=1).astype(object)}

    def encode(self, rows, state):
        from forgeml.features.records import InputError, checked_text

        columns = state["columns"]
        out = np.empty((len(rows), len(columns)), dtype=object)
        for j, c in enumerate(columns):
            for i, r in enumerate(rows):
                try:
                    out[i, j] = checked_text(request_key(r.get(c)), c, i)
                except (TypeError, ValueError):  # ValueError: int too long for str()
                    raise InputError(f"must be a string, number, boolean or null, got {type(r.get(c)).__name__}", c, i) from None
        return {"categorical": out}

    def graph(self, state, g):
        g.add_input("categorical", "STRING", ["batch", len(state["columns"])])
        g.ml_domain = True
        axes = g.const("pre/axis1", np.asarray([1], dtype=np.int64))
        codes = []
        for j, levels in enumerate(state["levels"]):
            idx = g.const(f"pre/col{j}", np.asarray(j, dtype=np.int64))
            g.node("Gather", ["categorical", idx], [f"pre/cat{j}"], f"pre/gather{j}", axis=1)
            g.node("LabelEncoder", [f"pre/cat{j}"], [f"pre/code{j}"], f"pre/encode{j}", domain="ai.onnx.ml",
                   **level_codes(levels, state.get("missing") == "most_frequent"), default_int64=0)
            g.node("Unsqueeze", [f"pre/code{j}", axes], [f"pre/code{j}_col"], f"pre/unsqueeze{j}")
            codes.append(f"pre/code{j}_col")
        g.node("Concat", codes, [INTERNAL], "pre/concat_codes", axis=1)
        return {"categorical": INTERNAL}

    def flat(self, state, g, onehot):
        if not onehot:  # trees split on the codes themselves
            g.node("Cast", [INTERNAL], ["pre/codes_float"], "pre/cast", to=g.TensorProto.FLOAT)
            return ["pre/codes_float"]
        parts = []  # detectors: one column per level, code 0 (unseen/missing) -> all zeros
        for j, levels in enumerate(state["levels"]):
            codes = g.const(f"pre/levels{j}", np.arange(1, len(levels) + 1, dtype=np.int64)[None, :])
            g.node("Equal", [f"pre/code{j}_col", codes], [f"pre/onehot{j}_bool"], f"pre/onehot{j}")
            g.node("Cast", [f"pre/onehot{j}_bool"], [f"pre/onehot{j}"], f"pre/onehot{j}_cast", to=g.TensorProto.FLOAT)
            parts.append(f"pre/onehot{j}")
        return parts

    def example(self, shapes, generator):
        import torch

        return {"categorical": torch.stack([torch.randint(0, c, (3,), generator=generator) for c in shapes["categorical"]], dim=1)}

    def field(self, state, column):
        levels = state["levels"][state["columns"].index(column)]
        entry = {"name": column, "type": self.name,
                 "schema": {"type": ["string", "number", "boolean", "null"],
                            "description": "one of the levels seen in training (others count as unknown); null means missing"}}
        if levels:
            entry["schema"]["examples"] = [str(levels[0])]  # the most frequent level
        if len(levels) <= MAX_LEVELS_SHOWN:
            entry["levels"] = [str(v) for v in levels]
        return entry

    # ---- explanations (forgeml.core.FeatureType): one attribution per column; typical: the most frequent level
    def typical_values(self, state):
        return {c: (levels[0] if levels else None) for c, levels in zip(state["columns"], state["levels"])}

    def switched_off(self, state, key, centre, like):
        import torch  # a random known level's code per switched-off column

        return torch.stack([torch.randint(1, max(2, len(levels) + 1), (like.shape[0],)) for levels in state["levels"]], dim=1)
