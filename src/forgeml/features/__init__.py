"""Feature types: numeric, categorical, text and image columns, one module each (forgeml.core.FeatureType).

Everything that depends on a column's kind goes through here: detecting a column's type, fitting the preprocessing,
the model's input arrays, the ONNX graph's inputs and preprocessing nodes, the JSON request field. A new type (audio, video, ...) is a module
that registers itself in ``forgeml.core.FEATURES``; nothing else learns its name.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterator

import numpy as np

from forgeml.core import FEATURES, FeatureType

__all__ = ["FEATURES", "FeatureType", "get", "all_types", "present", "of_column", "augment_roles", "smote_roles", "detect", "tags_of", "infer_features", "Graph"]


@lru_cache(maxsize=None)
def get(name: str) -> FeatureType:
    """The feature type registered as ``name`` (one instance per type)."""
    return FEATURES.get(name)()


def all_types() -> list[FeatureType]:
    """Every registered type, in input order."""
    return sorted((get(n) for n in FEATURES.names()), key=lambda t: (t.order, t.name))


def present(pre_state: dict) -> Iterator[tuple[FeatureType, dict]]:
    """(type, its state) for each type the preprocessing holds, in input order."""
    for ftype in all_types():
        if ftype.name in pre_state:
            yield ftype, pre_state[ftype.name]


def tagged(tag: str) -> list[str]:
    """Names of the feature types that carry ``tag``."""
    return FEATURES.tagged(tag)


def of_column(manifest_features: list[dict], tag: str) -> str | None:
    """The first column whose type carries ``tag`` (e.g. ``files``: a folder of files can stand for it)."""
    kinds = set(tagged(tag))
    return next((f["name"] for f in manifest_features if f["type"] in kinds), None)


# ---- augmentation and SMOTE: the present types' declarations (FeatureType.augment_inputs, .smote) per model input,
# handed to forgeml.data (which cannot import the types)
def augment_roles(pre_state: dict) -> dict[str, str]:
    """Model input key -> its augmentation role (forgeml.data.augment), for the types present, in input order."""
    return {key: role for ftype, state in present(pre_state) for key, role in ftype.augment_inputs(state).items()}


def smote_roles(pre_state: dict) -> dict[str, str | None]:
    """Every model input key -> how SMOTE treats it ("continuous", "nominal"; None: it cannot), in input order."""
    return {key: ftype.smote for ftype, state in present(pre_state) for key in ftype.model_inputs(state)}


# ---- detection: a column's type asked of the registered types (FeatureType.detect), not decided here
def detect(col) -> str:
    """The type of a column that data.features does not name: the first registered type, in ``detect_order``, whose
    ``detect`` claims its non-missing values; ``ignore`` when none does (dates)."""
    from forgeml.errors import DataError

    values = col.dropna()
    if values.empty:
        raise DataError(f"column {col.name!r} is entirely missing; drop it or set data.features.{col.name}: ignore")
    for ftype in sorted(all_types(), key=lambda t: (t.detect_order, t.name)):
        if ftype.detect(values):
            return ftype.name
    return "ignore"


def tags_of(name: str) -> frozenset:
    """The tags of a type by name; none for a name no type registered (``ignore``, a profile's ``empty``)."""
    return FEATURES.get(name).tags if name in FEATURES else frozenset()


def infer_features(df, target: str | None, overrides: dict[str, str]) -> list:
    """The input columns (all but ``target``) and their types: data.features' ``overrides``, else ``detect``;
    ``ignore`` drops a column. A type's ``max_columns`` is checked here."""
    from forgeml.data.schema import Feature
    from forgeml.errors import DataError

    unknown = sorted(set(overrides) - set(df.columns))
    if unknown:
        raise DataError(f"data.features names columns that are not in the data: {unknown}; columns: {list(df.columns)}")
    features = []
    for name in df.columns:
        if name == target:
            continue
        kind = overrides.get(name) or detect(df[name])
        if kind != "ignore":
            features.append(Feature(name, kind))
    if not features:
        raise DataError(f"no input features left besides the target {target!r}")
    for ftype in all_types():
        cols = [f.name for f in features if f.type == ftype.name]
        if ftype.max_columns is not None and len(cols) > ftype.max_columns:
            many = "one" if ftype.max_columns == 1 else f"up to {ftype.max_columns}"
            raise DataError(f"{many} {ftype.name} column{'s are' if ftype.max_columns > 1 else ' is'} supported per "
                            f"model, found {cols}; set the others to ignore in data.features")
    return features


class Graph:
    """What the feature types add to an ONNX graph: nodes, initializers and raw inputs, plus the domains used."""

    def __init__(self):
        from onnx import TensorProto, helper, numpy_helper

        self.helper, self.numpy_helper, self.TensorProto = helper, numpy_helper, TensorProto
        self.nodes: list = []
        self.inits: list = []
        self.inputs: list = []
        self.ml_domain = False  # ai.onnx.ml operators were used

    def const(self, name: str, value: Any) -> str:
        self.inits.append(self.numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str, **attrs) -> None:
        self.nodes.append(self.helper.make_node(op, inputs, outputs, name=name, **attrs))

    def add_input(self, name: str, elem_type: str, shape: list) -> None:
        self.inputs.append(self.helper.make_tensor_value_info(name, getattr(self.TensorProto, elem_type), shape))
