"""Model registry. A torch model registers a builder by name with the feature types it accepts:

    @register_model("mlp", supports={"numeric", "categorical", "text"})
    def build(params, shapes, out_dim) -> nn.Module: ...

``shapes`` comes from Preprocessor.input_shapes(); models take the dict of input tensors it produces.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

from forgeml.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    supports: frozenset[str]
    build: Callable
    text_tokenizer: Union[str, Callable] = "words"  # or a function of the model's params

    def tokenizer_for(self, params) -> str:
        return self.text_tokenizer(params) if callable(self.text_tokenizer) else self.text_tokenizer


MODELS: dict[str, ModelSpec] = {}
# Non-torch estimators with their own fit/save (see models/gbdt.py).
ESTIMATORS = {"lightgbm": frozenset({"numeric", "categorical"})}


def register_model(name: str, supports: set[str], text_tokenizer: Union[str, Callable] = "words"):
    def deco(fn):
        MODELS[name] = ModelSpec(name, frozenset(supports), fn, text_tokenizer)
        return fn

    return deco


def _load_builtin():
    from forgeml.models import cnn, minilm, mlp, text  # noqa: F401  (registers)


def get_model(name: str) -> ModelSpec:
    _load_builtin()
    return MODELS[name]


def supported_types(name: str) -> frozenset[str]:
    if name in ESTIMATORS:
        return ESTIMATORS[name]
    return get_model(name).supports


def resolve_auto(feature_types: set[str]) -> list[str]:
    """Candidate models for `model: auto`, from the feature types present."""
    if "image" in feature_types:
        return ["cnn"]
    if feature_types == {"text"}:
        return ["text"]
    if "text" in feature_types:
        return ["mlp"]
    return ["mlp", "lightgbm"]


def check_supports(name: str, features) -> None:
    allowed = supported_types(name)
    bad = [f for f in features if f.type not in allowed]
    if bad:
        f = bad[0]
        raise ConfigError(
            f"model {name!r} accepts {', '.join(sorted(allowed))} features, but {f.name!r} is {f.type}; "
            f"choose another model (e.g. model: auto) or set data.features.{f.name}: ignore"
        )
