"""The Open Inference Protocol (KServe v2, Triton's HTTP/REST API) beside the v1 routes, so that a client written for
KServe or Triton (``tritonclient.http``, KServe's ``InferenceRESTClient``) calls a forgeml server unchanged.

Routes: ``GET /v2`` (server metadata), ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2/models/{name}``
(model metadata: its input and output tensors), ``GET /v2/models/{name}/ready`` and ``POST /v2/models/{name}/infer``,
each also under ``/v2/models/{name}/versions/{version}``. Inference goes through the same batcher and ONNX Runtime
session as v1; the tensors are decoded by forgeml.serve.v2_tensors. Errors follow the protocol: status 400 (404 for
an unknown model) with ``{"error": message}``.
"""
from __future__ import annotations

import json
from typing import Any, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.datastructures import Headers

from forgeml import __version__
from forgeml.features.records import InputError, printable
from forgeml.serve import v2_tensors as tensors
from forgeml.serve.registry import OutputError
from forgeml.serve.v2_tensors import TensorError

HEADER_LENGTH = "inference-header-content-length"


# ------------------------------------------------------------------------------------------------ documentation
class V2Error(BaseModel):
    error: str = Field(..., description="what is wrong with the request, naming the tensor")


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    ready: bool


class V2ModelReady(BaseModel):
    name: str
    ready: bool


class V2TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(..., description="-1: any size")


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]


class V2Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Optional[dict[str, Any]] = None
    data: Optional[list[Any]] = Field(None, description="row-major, flat or nested; absent when the binary tensor "
                                                        "data extension carries it")


class V2RequestedOutput(BaseModel):
    name: str
    parameters: Optional[dict[str, Any]] = None


class V2InferRequest(BaseModel):
    id: Optional[str] = None
    parameters: Optional[dict[str, Any]] = None
    inputs: list[V2Tensor]
    outputs: Optional[list[V2RequestedOutput]] = None


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: Optional[str] = None
    outputs: list[V2Tensor]


def _errors(*statuses: int) -> dict:
    return {s: {"model": V2Error, "description": {400: "a request the protocol or the model refuses",
                                                  404: "no such model or version"}[s]} for s in statuses}


INFER_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/V2InferRequest"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"},
                                 "description": "the JSON request, then the binary tensor data; the header "
                                                "Inference-Header-Content-Length gives the JSON's length"}}}}
INFER_ANSWER = {200: {"model": V2InferResponse, "description": "the output tensors (JSON, or JSON then binary data "
                      "when binary outputs are asked for; Inference-Header-Content-Length gives the JSON's length)",
                      "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                **_errors(400, 404)}


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": printable(message)}, status_code=status)  # a name may hold a lone surrogate


# ------------------------------------------------------------------------------------------------ routes
def add_routes(app: FastAPI, registry, batchers: dict, auth: list, settings, ready) -> dict:
    """Add the v2 routes; ``ready()`` says whether the server is ready. Returns the predict lane's entries for the
    served models' infer paths (forgeml.serve.lane)."""
    tags = ["v2 (Open Inference Protocol)"]

    def lookup(name: str, version: Optional[str]):
        model = registry.get(name, version)
        if model is None:
            return None, error(404, registry.missing(name, version))
        if model.route != "predict":  # answered by its run's own models, not an ONNX graph
            return None, error(400, model.elsewhere("the Open Inference Protocol"))
        return model, None

    def metadata(name: str, version: Optional[str]):
        model, problem = lookup(name, version)
        if problem:
            return problem
        return {"name": model.name, "versions": [version] if version else sorted(registry.models[name]),
                "platform": "onnxruntime_onnx", "inputs": tensors.input_metadata(model.signature),
                "outputs": tensors.output_metadata(model.signature)}

    def model_ready(name: str, version: Optional[str]):
        model, problem = lookup(name, version)
        if problem:
            return problem
        if not (ready() and batchers[(model.name, model.version)].running):
            return error(400, f"model {name} is not ready")
        return {"name": model.name, "ready": True}

    async def infer(name: str, version: Optional[str], request: Request):
        model, problem = lookup(name, version)
        return problem or await infer_with(model, request.body, request.headers.get(HEADER_LENGTH))

    async def infer_with(model, read_body, header_length: Optional[str]):
        """The answer of an infer route (from FastAPI's routes and the predict lane, forgeml.serve.lane)."""
        batcher = batchers[(model.name, model.version)]
        batcher.arriving += 1  # until queued: the batcher may wait for this request (as for v1)
        try:
            try:
                body, blob = tensors.parse(await read_body(), header_length)
                rows = tensors.instances(body, blob, model.signature, settings.max_instances)
                feed = model.feed(rows)
            except TensorError as exc:
                return error(400, str(exc))
            except InputError as exc:
                where = "inputs" if not exc.field else f"input '{exc.field}'" + ("" if exc.row is None else f"[{exc.row}]")
                return error(400, f"{where}: {exc}")
        finally:
            batcher.arriving -= 1
        out = await batcher.submit(feed, len(rows))
        try:
            fields = model.response(out)
            outputs, blob = tensors.outputs(fields, model.signature, body)
        except OutputError as exc:
            return error(400, f"instance {exc.row}: {exc}")
        except TensorError as exc:
            return error(400, str(exc))
        answer = {"model_name": model.name, "model_version": model.version, "outputs": outputs}
        if "id" in body:
            answer["id"] = body["id"]
        if not blob:
            return JSONResponse(answer)
        head = json.dumps(answer, separators=(",", ":")).encode()
        return Response(head + blob, media_type="application/octet-stream",
                        headers={"Inference-Header-Content-Length": str(len(head))})

    @app.get("/v2", response_model=V2ServerMetadata, tags=tags, summary="Server metadata")
    async def server_metadata():
        return {"name": "forgeml", "version": __version__, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live", response_model=V2Live, tags=tags, summary="Liveness")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready", response_model=V2Ready, tags=tags, summary="Readiness (200 ready, 400 not)",
             responses=_errors(400))
    async def server_ready():
        return {"ready": True} if ready() else error(400, "the server is starting or stopping")

    lane = {}
    for path, version_param in (("/v2/models/{name}", False), ("/v2/models/{name}/versions/{version}", True)):
        _route(app, path, "GET", metadata, version_param, auth, tags, "Model metadata: its input and output tensors",
               response_model=V2ModelMetadata, responses=_errors(404))
        _route(app, path + "/ready", "GET", model_ready, version_param, auth, tags, "Model readiness (200 ready, 400 not)",
               response_model=V2ModelReady, responses=_errors(400, 404))
        _route(app, path + "/infer", "POST", infer, version_param, auth, tags, "Inference with typed tensors",
               responses=INFER_ANSWER, openapi_extra=INFER_BODY, with_request=True)
        route = app.router.routes[-1]
        for m in registry.graphs():
            if version_param or registry.default[m.name] == m.version:
                params = {"name": m.name, **({"version": m.version} if version_param else {})}
                lane[path.format(**params) + "/infer"] = (
                    route, params, lambda scope, read_body, m=m: infer_with(m, read_body, Headers(scope=scope).get(HEADER_LENGTH)))
    return lane


def _route(app: FastAPI, path: str, method: str, handler, version_param: bool, auth, tags, summary: str,
           with_request: bool = False, **kw) -> None:
    if with_request:
        if version_param:
            async def endpoint(name: str, version: str, request: Request):
                return await handler(name, version, request)
        else:
            async def endpoint(name: str, request: Request):
                return await handler(name, None, request)
    elif version_param:
        async def endpoint(name: str, version: str):
            return handler(name, version)
    else:
        async def endpoint(name: str):
            return handler(name, None)
    app.add_api_route(path, endpoint, methods=[method], dependencies=auth, tags=tags, summary=summary,
                      operation_id="v2_" + path.replace("/v2/models/", "").replace("/", "_").replace("{", "").replace("}", "")
                      + "_" + method.lower(), **kw)


def document(schema: dict, registry) -> None:
    """Complete the OpenAPI schema: the schemas the infer body refers to (the server reads it by hand, so no FastAPI
    parameter names them), and the served names and versions as the v2 path parameters' values."""
    from pydantic.json_schema import models_json_schema

    _, top = models_json_schema([(V2InferRequest, "validation")], ref_template="#/components/schemas/{model}")
    schema.setdefault("components", {}).setdefault("schemas", {}).update(top.get("$defs", {}))
    graphs = registry.graphs()
    values = {"name": sorted({m.name for m in graphs}), "version": sorted({m.version for m in graphs})}
    for path, operations in schema.get("paths", {}).items():
        if path.startswith("/v2/models/"):
            for operation in operations.values():
                for parameter in operation.get("parameters", []):
                    if values.get(parameter["name"]) and parameter.get("in") == "path":
                        parameter["schema"] = {**parameter["schema"], "enum": values[parameter["name"]]}
