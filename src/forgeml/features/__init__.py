"""Feature types: numeric, categorical, text and image columns, one module each (forgeml.core.FeatureType).

Everything that depends on a column's kind goes through here: fitting the preprocessing, the model's input arrays,
the ONNX graph's inputs and preprocessing nodes, the JSON request field. A new type (audio, video, ...) is a module
that registers itself in ``forgeml.core.FEATURES``; nothing else learns its name.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterator

import numpy as np

from forgeml.core import FEATURES, FeatureType

__all__ = ["FEATURES", "FeatureType", "get", "all_types", "present", "of_column", "Graph"]


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
