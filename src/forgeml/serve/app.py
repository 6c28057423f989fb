"""The FastAPI app: predict (instances/predictions, as TF-Serving and KServe v1), model listing, health, metrics,
OpenAPI docs at /docs and a web page at /.

Every failure a client can cause is a 4xx with a message: 400 unreadable JSON, 401 missing/wrong API key, 404 unknown
model, 413 body too large, 422 a value the model cannot take (the message names the row and field).
"""
from __future__ import annotations

import hmac
import json
import os
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any, Optional

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from forgeml.serve.batching import Batcher
from forgeml.data.records import InputError
from forgeml.serve.metrics import Metrics

API_KEY_ENV = "FORGEML_API_KEY"


@dataclass
class ServeSettings:
    max_batch: int = 64
    max_wait_ms: float = 5.0
    api_key: Optional[str] = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_instances: int = 1024


class PredictRequest(BaseModel):
    """Rows to predict: one object per row, feature name -> value (numbers, strings, null for missing; an image as a
    nested list of pixel values or a base64-encoded image file; text as a string)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"instances": [{"feature": 1.0}]}]})
    instances: list[dict[str, Any]] = Field(..., min_length=1)


class PredictResponse(BaseModel):
    model: str
    version: str
    predictions: list[Any] = Field(..., description="class label or predicted value per instance")
    probabilities: Optional[list[list[float]]] = Field(None, description="class probabilities per instance, in `labels` order")
    labels: Optional[list[Any]] = None


class ExplainRequest(BaseModel):
    """Rows to explain (as for predict) and optionally the method: gradcam | ig | lime (default: gradcam for images,
    ig for text and MLP tables, lime for LightGBM)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"instances": [{"feature": 1.0}], "method": "ig"}]})
    instances: list[dict[str, Any]] = Field(..., min_length=1)
    method: Optional[str] = None


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


class ModelInfo(BaseModel):
    name: str
    version: str
    default: bool
    task: str
    model: str
    precision: str
    file: str
    input_schema: list[dict[str, Any]] = Field(..., description="name and type (numeric, categorical, text, image) per feature; categoricals list their known levels, images their size and mode")
    labels: Optional[list[Any]]
    target: str
    test_metrics: Optional[dict[str, Any]]


class ModelList(BaseModel):
    models: list[ModelInfo]


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"detail": message, **extra}, status_code=status)


class BodyLimit:
    """Refuse bodies over the limit with 413, by Content-Length or while streaming (chunked requests)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        too_big = _error(413, f"request body larger than {self.limit} bytes")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await too_big(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await too_big(scope, receive, send)


class _TooLarge(Exception):
    pass


class Measure:
    """Count requests by route, model and status, time them, and tell the client: ``Server-Timing: app;dur=MS``.
    (Plain ASGI rather than @app.middleware("http"), which costs a task and a stream per request.)"""

    def __init__(self, app, metrics: Metrics, models: set[str]):
        self.app, self.metrics, self.models = app, metrics, models

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        tic = time.perf_counter()

        async def timed(message):
            if message["type"] == "http.response.start":
                seconds = time.perf_counter() - tic
                route = getattr(scope.get("route"), "path", "unmatched")
                name = scope.get("path_params", {}).get("name", "")
                model = name if name in self.models else ("unknown" if name else "")
                self.metrics.requests.labels(route, model, str(message["status"])).inc()
                self.metrics.latency.labels(route, model).observe(seconds)
                message["headers"] = [*message.get("headers", []), (b"server-timing", f"app;dur={seconds * 1000:.3f}".encode())]
            await send(message)

        await self.app(scope, receive, timed)


def create_app(registry, settings: Optional[ServeSettings] = None) -> FastAPI:
    settings = settings or ServeSettings()
    metrics = Metrics()
    batchers = {(m.name, m.version): Batcher(m, settings.max_batch, settings.max_wait_ms, metrics) for m in registry.all()}
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(app):
        for b in batchers.values():
            b.start()
        state["ready"] = True
        yield
        state["ready"] = False
        for b in batchers.values():
            await b.stop()

    app = FastAPI(title="forgeml model server", version="1", lifespan=lifespan,
                  description="Predictions from forgeml runs on ONNX Runtime. Models: " + ", ".join(registry.names()))
    app.state.registry, app.state.settings, app.state.metrics, app.state.batchers = registry, settings, metrics, batchers

    def authorized(request: Request) -> None:
        if not settings.api_key:
            return
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not given or not hmac.compare_digest(given.encode(), settings.api_key.encode()):
            raise _Unauthorized

    @app.exception_handler(_Unauthorized)
    async def _unauthorized(request, exc):
        return JSONResponse({"detail": "missing or wrong API key: send it as 'X-API-Key: KEY' or 'Authorization: Bearer KEY'"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc):
        problems = []
        for e in exc.errors()[:10]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {e.get('msg')}")
        return _error(422, "; ".join(problems) or "invalid request")

    def _lookup(name: str, version: Optional[str]):
        """(the served model, None), or (None, a 404 naming what is served)."""
        model = registry.get(name, version)
        if model is not None:
            return model, None
        if name in registry.models:
            return None, _error(404, f"model {name} has no version {version}; versions: {sorted(registry.models[name])}")
        return None, _error(404, f"no model named {name!r}; serving {sorted(registry.models)}")

    async def _instances(request: Request, limit: int, optional: tuple[str, ...] = ()):
        """(the JSON body, None), or (None, a 400/413/422 saying what is wrong with it). The body is parsed by hand
        so that deeply nested or non-finite JSON gets a 4xx instead of an exception."""
        shape = "{\"instances\": [{feature: value, ...}, ...]" + "".join(f", \"{k}\": ..." for k in optional) + "}"
        try:
            body = json.loads(await request.body())
        except (ValueError, RecursionError):
            return None, _error(400, f"the body is not valid JSON (expected {shape})")
        if not isinstance(body, dict) or not isinstance(body.get("instances"), list) or set(body) - {"instances", *optional}:
            return None, _error(422, f"the body must be an object {shape}: 'instances' is a non-empty list of objects"
                                     + (f"; {', '.join(optional)} optional" if optional else ""))
        if not body["instances"]:
            return None, _error(422, "'instances' is empty")
        if len(body["instances"]) > limit:
            return None, _error(413, f"{len(body['instances'])} instances in one request; the limit is {limit}")
        return body, None

    def _bad_input(exc: InputError):
        where = f"instances[{exc.row}]" + (f".{exc.field}" if exc.field else "") if exc.row is not None else "instances"
        return _error(422, f"{where}: {exc}", field=exc.field, row=exc.row)

    async def _predict(name: str, version: Optional[str], request: Request):
        model, problem = _lookup(name, version)
        if problem:
            return problem
        batcher = batchers[(model.name, model.version)]
        batcher.arriving += 1  # from here until queued: the batcher may wait (up to max_wait_ms) for this request
        try:
            body, problem = await _instances(request, settings.max_instances)
            if problem:
                return problem
            try:
                feed = model.feed(body["instances"])
            except InputError as exc:
                return _bad_input(exc)
        finally:
            batcher.arriving -= 1
        out = await batcher.submit(feed, len(body["instances"]))
        # a JSONResponse, not a dict: the response model documents the shape, re-validating it per request is waste
        return JSONResponse({"model": model.name, "version": model.version, "labels": model.labels, **model.response(out)})

    # The body is parsed by hand (_instances), not by a pydantic parameter; `openapi_extra` still documents it with
    # the pydantic model.
    body_doc = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}}}}

    @app.post("/v1/models/{name}/predict", response_model=PredictResponse, dependencies=[Depends(authorized)],
              openapi_extra=body_doc, tags=["predict"], summary="Predict with a model's default version")
    async def predict(name: str, request: Request):
        return await _predict(name, None, request)

    @app.post("/v1/models/{name}/versions/{version}/predict", response_model=PredictResponse,
              dependencies=[Depends(authorized)], openapi_extra=body_doc, tags=["predict"], summary="Predict with one version")
    async def predict_version(name: str, version: str, request: Request):
        return await _predict(name, version, request)

    from forgeml.explain.service import MAX_INSTANCES as EXPLAIN_MAX, ExplainProblem, Explainers

    explainers = Explainers()  # torch/LightGBM models loaded from their runs on the first explain request

    async def _explain(name: str, version: Optional[str], request: Request):
        from starlette.concurrency import run_in_threadpool

        model, problem = _lookup(name, version)
        if problem:
            return problem
        body, problem = await _instances(request, EXPLAIN_MAX, optional=("method",))
        if problem:
            return problem
        rows = body["instances"]
        try:
            method = explainers.method(model, body.get("method"))
            model.feed(rows)  # the same schema checks as predict: 422 naming the row and field
            result = await run_in_threadpool(explainers.explain, model, rows, method)
        except InputError as exc:
            return _bad_input(exc)
        except ExplainProblem as exc:
            return _error(exc.status, str(exc))
        return JSONResponse(result)

    explain_doc = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ExplainRequest"}}}}}

    @app.post("/v1/models/{name}/explain", response_model=ExplainResponse, dependencies=[Depends(authorized)],
              openapi_extra=explain_doc, tags=["explain"], summary="Explain predictions of a model's default version")
    async def explain(name: str, request: Request):
        return await _explain(name, None, request)

    @app.post("/v1/models/{name}/versions/{version}/explain", response_model=ExplainResponse,
              dependencies=[Depends(authorized)], openapi_extra=explain_doc, tags=["explain"], summary="Explain with one version")
    async def explain_version(name: str, version: str, request: Request):
        return await _explain(name, version, request)

    def _info(m) -> dict:
        return {**m.describe(), "default": registry.default[m.name] == m.version}

    @app.get("/v1/models", response_model=ModelList, dependencies=[Depends(authorized)], tags=["models"])
    async def list_models():
        return {"models": [_info(m) for m in registry.all()]}

    @app.get("/v1/models/{name}", response_model=ModelList, dependencies=[Depends(authorized)], tags=["models"])
    async def model_versions(name: str):
        if name not in registry.models:
            return _error(404, f"no model named {name!r}; serving {sorted(registry.models)}")
        return {"models": [_info(m) for m in registry.models[name].values()]}

    @app.get("/healthz", tags=["health"])
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz():
        ready = state["ready"] and all(b.running for b in batchers.values())
        return JSONResponse({"ready": ready, "models": registry.names()}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["health"])
    async def prometheus():
        data, content_type = metrics.render()
        return Response(data, media_type=content_type)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        from forgeml.serve.page import render

        return render(api_key_required=bool(settings.api_key))

    # the schema of PredictRequest must appear in components even though no parameter uses it
    original = app.openapi

    def openapi():
        schema = original()
        schema.setdefault("components", {}).setdefault("schemas", {})["PredictRequest"] = PredictRequest.model_json_schema()
        schema["components"]["schemas"]["ExplainRequest"] = ExplainRequest.model_json_schema()
        return schema

    app.openapi = openapi
    if settings.max_body_bytes:
        app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(Measure, metrics=metrics, models=set(registry.models))
    return app


class _Unauthorized(Exception):
    pass


# ----- `forgeml serve --workers N`: each uvicorn worker process builds the app from the environment
CONFIG_ENV = "FORGEML_SERVE_CONFIG"


def app_from_env():
    from forgeml.serve.registry import build_registry

    cfg = json.loads(os.environ[CONFIG_ENV])
    registry = build_registry(cfg["specs"], cfg["precision"], cfg.get("threads"), cfg.get("default"))
    return create_app(registry, ServeSettings(**cfg["settings"]))


def settings_json(specs: list[str], precision: str, threads, default, settings: ServeSettings) -> str:
    return json.dumps({"specs": specs, "precision": precision, "threads": threads, "default": default, "settings": asdict(settings)})
