"""model: the learner and its parameters. Each learner's parameter class lives beside it (``Params`` on the learner
in forgeml.models: MLPParams in models/mlp.py, LightGBMParams in models/gbdt.py, ...); ``model.name`` picks it from
the registry when the config is validated, so a new learner needs no change here. Only ``auto`` is config's own."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, SerializeAsAny
from pydantic_core import PydanticCustomError

from forgeml.config.base import Strict


class AutoParams(Strict):
    """Choose from the feature types, keeping the better on validation: tables -> the weighted ensemble (presets
    medium and best) or mlp and lightgbm (presets fast), tables with text
    columns -> mlp and lightgbm_tfidf, text -> text (bilstm) and tfidf_linear, images -> cnn and pixels_linear."""

    name: Literal["auto"] = "auto"
    presets: Literal["fast", "medium", "best"] = Field(
        "medium", description="tables: fast = mlp vs lightgbm, the better on validation kept; medium = a weighted "
                              "ensemble of LightGBM, CatBoost and LightGBM-XT, k-fold bagged below 20,000 rows; best = "
                              "the ensemble with 8 folds, bagged below 100,000 rows. Other data: the same candidates for all")


def params_class(name: str) -> type[BaseModel]:
    """The parameter class of model ``name`` (forgeml.core.UnknownName, listing the models, for an unknown one)."""
    if name == "auto":
        return AutoParams
    from forgeml.core import LEARNERS

    return LEARNERS.get(name).Params


def model_names() -> list[str]:
    from forgeml.core import LEARNERS

    return ["auto", *LEARNERS.names()]


def all_params() -> dict[str, type[BaseModel]]:
    """Model name -> its parameter class, for every registered learner (loads the built-in learners)."""
    return {name: params_class(name) for name in model_names()}


def _validate(value):
    """``model: {name: mlp, hidden: [64]}`` (or a bare ``model: mlp``) -> that learner's parameters."""
    if isinstance(value, BaseModel):
        return value
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise PydanticCustomError("model_section", "model must be a mapping with a name, e.g. {name: mlp, hidden: [64]}")
    if "name" not in value:
        raise PydanticCustomError("model_name", "no model name; choose one of: {names}", {"names": ", ".join(model_names())})
    from forgeml.core import UnknownName

    try:
        cls = params_class(value["name"])
    except (UnknownName, TypeError):
        raise PydanticCustomError("model_name", "unknown model name '{name}'; choose one of: {names}",
                                  {"name": value["name"], "names": ", ".join(model_names())}) from None
    return cls.model_validate(value)


# The validated value is the learner's own Params instance (cfg.model.hidden...); dumps use its fields.
ModelConfig = Annotated[SerializeAsAny[BaseModel], BeforeValidator(_validate),
                        Field(description="the learner (`name`) and its parameters; `forgeml tasks` lists the models")]
