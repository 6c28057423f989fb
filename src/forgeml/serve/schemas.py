"""What /openapi.json and /docs say: each served model's request and response models, built with
``pydantic.create_model`` from its run's signature (``forgeml.run.signature``), and the bodies every other answer has.

The models document; they do not validate on the hot path. The server parses the body by hand and the feature types
check the values (``forgeml.features.records.encode``); each feature's JSON schema comes from the same feature type
(``FeatureType.field``), so the two agree. ``tests/test_serve_schema.py`` runs schemathesis against a served model to
hold them to it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional, Union

import annotated_types as at
from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, WithJsonSchema,
                      create_model)
from pydantic.json_schema import models_json_schema

REF = "#/components/schemas/{model}"


class ErrorBody(BaseModel):
    """Every 4xx answer."""

    detail: str = Field(..., description="what is wrong and what to send instead")
    field: Optional[str] = Field(None, description="422 for a value: the feature it is about")
    row: Optional[int] = Field(None, description="422 for a value: the index of its instance")


class InputField(BaseModel):
    """One feature of a model's input, from its run's signature: name, type and the JSON schema of one value;
    categoricals list their known levels (up to 500), images their training size and mode."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    name: str
    type: str
    value_schema: dict[str, Any] = Field(..., alias="schema", description="JSON schema of one value")


class ModelInfo(BaseModel):
    name: str
    version: str
    default: bool
    task: str
    model: str
    precision: str
    file: str
    input_schema: list[InputField] = Field(..., description="the fields of one instance, in order")
    output_schema: dict[str, dict[str, Any]] = Field(..., description="the response fields beside model and version "
                                                     "(field -> JSON schema)")
    route: str = Field("predict", description="what its POST route answers: predict (and explain), or the route of "
                       "a model that answers for itself (forecast: a history in, the next points out)")
    labels: Optional[list[Any]]
    target: Optional[str]
    test_metrics: Optional[dict[str, Any]]
    horizon: Optional[int] = Field(None, description="forecast: the points forecast per series")
    example: Optional[Union[list[dict[str, Any]], dict[str, Any]]] = Field(
        None, description="a model on a route of its own: a body to try it with (forecast: a history, the end of a "
                          "series of the run's data; generate: the fields of a request)")


class ModelList(BaseModel):
    models: list[ModelInfo]


class ExplainResponse(BaseModel):
    model: str
    version: str
    method: str
    task: str
    labels: Optional[list[Any]] = None
    units: str = Field(..., description="what the attributions add up to, e.g. the probability of the predicted class")
    baseline: str = Field(..., description="the reference input attributions are measured from")
    explanations: list[dict[str, Any]] = Field(..., description="per instance: prediction, probabilities, and "
                                               "attributions per feature (tables), per token (text) or a heat-map (images)")


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool = Field(..., description="models loaded and their batchers running")
    models: list[str] = Field(..., description="NAME:VERSION of each served model")


STATUS_TEXT = {
    400: "the body is not valid JSON",
    401: "missing or wrong API key",
    404: "no such model or version",
    409: "the run cannot be loaded for explaining",
    413: "the body is larger than the server takes",
    422: "a value the model cannot take; `row` and `field` name it",
    501: "the explain extra is not installed",
}


def errors(*statuses: int) -> dict:
    """FastAPI ``responses=`` for these 4xx/5xx answers, each an ErrorBody."""
    return {s: {"model": ErrorBody, "description": STATUS_TEXT[s]} for s in statuses}


# ------------------------------------------------------------------------------------------- per served model
JSON_TYPES = {"string": StrictStr, "integer": StrictInt, "boolean": StrictBool, "null": type(None), "array": list,
              "object": dict}


def python_type(schema: dict) -> Any:
    """The Python type a JSON schema of one value allows (its ``type`` or ``anyOf``; numbers within its bounds)."""
    if "anyOf" in schema:
        options = [python_type(s) for s in schema["anyOf"]]
    else:
        kinds = schema.get("type", [])
        options = []
        for kind in [kinds] if isinstance(kinds, str) else kinds:
            if kind == "number":
                bounds = at.Interval(ge=schema.get("minimum"), le=schema.get("maximum"))
                options.append(Annotated[Union[StrictInt, StrictFloat], bounds])
            else:
                options.append(JSON_TYPES[kind])
    if not options:
        return Any
    return Union[tuple(options)] if len(options) > 1 else options[0]


def example(field: dict) -> Any:
    """A value for the body example: the field's own example, its most frequent level, or null where allowed."""
    schema = field["schema"]
    if schema.get("examples"):
        return schema["examples"][0]
    if field.get("levels"):
        return field["levels"][0]
    kinds = schema.get("type", [])
    if "null" in ([kinds] if isinstance(kinds, str) else kinds):
        return None
    raise LookupError


def component_name(name: str, version: str, what: str) -> str:
    """A name OpenAPI takes (letters, digits, ., -, _) that no other served model's shares."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{name}_v{version}_{what}")


@dataclass
class ModelSchemas:
    """One served model's pydantic models."""

    instance: type[BaseModel]
    predict_request: type[BaseModel]
    predict_response: type[BaseModel]
    explain_request: type[BaseModel]


def build(name: str, version: str, signature: dict, max_instances: int, explain_max: int,
          explain_methods: tuple[str, ...]) -> ModelSchemas:
    """The request and response models of one served model, from its run's signature."""
    fields = {}
    for i, f in enumerate(signature["inputs"]):
        schema = {"title": f["name"], **f["schema"]}
        fields[f"f{i}"] = (Annotated[python_type(f["schema"]), Field(alias=f["name"]), WithJsonSchema(schema)], ...)
    instance = create_model(component_name(name, version, "Instance"), __config__=ConfigDict(
        extra="forbid", title=f"one instance for {name}:{version}"), **fields)
    try:
        body = {"instances": [{f["name"]: example(f) for f in signature["inputs"]}]}
        examples = {"json_schema_extra": {"examples": [body]}}
    except LookupError:  # a field without an example value (an image): no body example
        examples = {}
    rows = "one object per row, feature name -> value; 1 to {} rows"
    predict_request = create_model(
        component_name(name, version, "PredictRequest"),
        __config__=ConfigDict(extra="forbid", title=f"predict with {name}:{version}", **examples),
        instances=(list[instance], Field(min_length=1, max_length=max_instances, description=rows.format(max_instances))))
    method = Optional[Literal[explain_methods]] if explain_methods else None
    explain_request = create_model(
        component_name(name, version, "ExplainRequest"),
        __config__=ConfigDict(extra="forbid", title=f"explain with {name}:{version}", **examples),
        instances=(list[instance], Field(min_length=1, max_length=explain_max, description=rows.format(explain_max))),
        method=(method, Field(None, description="the method (case is ignored); null: the run's default")))
    outputs = {f"o{i}": (Annotated[python_type(s), Field(alias=key), WithJsonSchema({"title": key, **s})], ...)
               for i, (key, s) in enumerate(signature["outputs"].items())}
    predict_response = create_model(
        component_name(name, version, "PredictResponse"), __config__=ConfigDict(title=f"predictions of {name}:{version}"),
        model=(Literal[name], ...), version=(Literal[version], ...), **outputs)
    return ModelSchemas(instance, predict_request, predict_response, explain_request)


def components(models: list[type[BaseModel]]) -> dict[str, dict]:
    """The OpenAPI component schemas of request models that the server reads by hand (no FastAPI parameter names
    them), with the models they refer to."""
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    return top.get("$defs", {})


def body_doc(model: type[BaseModel]) -> dict:
    """``openapi_extra`` documenting a route's JSON body with ``model``."""
    schema = {"$ref": REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def finite_or_none(metrics: Optional[dict]) -> Optional[dict]:
    """Metrics as JSON can carry them: NaN and infinities (an undefined metric) become null."""
    if metrics is None:
        return None
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
