"""The preprocessing of a run: each feature type's state, fitted on the training split and stored as plain JSON in
the manifest (``preprocessing``: the features, then one entry per type present, under the type's name).

``transform`` is vectorized numpy/pandas work, so predicting and serving replay exactly what training saw
(forgeml.features.numeric, categorical, text, image say what each type does).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from forgeml.data.schema import Feature
from forgeml.errors import DataError
from forgeml.features import all_types, present


class Preprocessor:
    def __init__(self, state: dict[str, Any]):
        self.state = state

    @classmethod
    def fit(cls, df, features: list[Feature], data_cfg, text_tokenizer: str = "words", clip_bounds=None,
            privacy=None) -> "Preprocessor":
        """``clip_bounds``: outlier quantiles already taken on the whole training split (before rows were dropped);
        ``privacy``: train.privacy, under which types learn less from the rows (forgeml.features.private)."""
        state: dict[str, Any] = {"features": [f.to_json() for f in features]}
        context = {"text_tokenizer": text_tokenizer, "clip_bounds": clip_bounds, "privacy": privacy}
        for ftype in all_types():
            columns = [f.name for f in features if f.type == ftype.name]
            if columns:
                state[ftype.name] = ftype.fit(df, columns, data_cfg, context)
        return cls(state)

    @property
    def features(self) -> list[Feature]:
        return [Feature(**f) for f in self.state["features"]]

    def transform(self, df) -> dict[str, np.ndarray]:
        names = [f.name for f in self.features]
        missing = [n for n in names if n not in df.columns]
        if missing:
            raise DataError(f"input is missing feature columns {missing}; the model needs {names}")
        out: dict[str, np.ndarray] = {}
        for ftype, state in present(self.state):
            out.update(ftype.transform(df, state))
        return out

    def input_shapes(self) -> dict[str, Any]:
        """What a model built on this preprocessing receives (sizes of each input group)."""
        shapes: dict[str, Any] = {}
        for ftype in all_types():
            shapes.update(ftype.shapes(self.state.get(ftype.name)))
        return shapes
