"""The FastAPI app: predict (instances/predictions, as TF-Serving and KServe v1), explain, model listing, health,
metrics, OpenAPI docs at /docs, a web page at /, and the Open Inference Protocol (KServe v2 / Triton) under /v2
(forgeml.serve.v2).

Each served model has its own routes, ``/v1/models/NAME/predict`` (its default version) and
``/v1/models/NAME/versions/V/predict`` (and ``.../explain``), whose request and response models are built from its
run's signature (forgeml.serve.schemas), so /docs shows that model's own fields. The generic
``/v1/models/{name}/...`` routes answer the same for clients that take the name as a parameter; the schema leaves them
out and lists each model's own. A served model's predict and v2 infer paths are answered by the predict lane
(forgeml.serve.lane) with the same handlers, without FastAPI's per-request machinery.

Every failure a client can cause is a 4xx with an ErrorBody: 400 unreadable JSON, 401 missing/wrong API key, 404
unknown model, 413 body too large, 422 a value the model cannot take (the message names the row and field).
"""
from __future__ import annotations

import hmac
import json
import os
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Optional

from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.datastructures import Headers

from forgeml.errors import ForgeMLError
from forgeml.features.records import InputError
from forgeml.serve import schemas
from forgeml.serve.batching import Batcher
from forgeml.serve.metrics import Metrics
from forgeml.serve.lane import PredictLane
from forgeml.serve.middleware import BodyLimit, Measure, error
from forgeml.serve.registry import OutputError

API_KEY_ENV = "FORGEML_API_KEY"


@dataclass
class ServeSettings:
    max_batch: int = 64
    max_wait_ms: float = 5.0
    api_key: Optional[str] = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_instances: int = 1024


def create_app(registry, settings: Optional[ServeSettings] = None) -> FastAPI:
    settings = settings or ServeSettings()
    metrics = Metrics()
    batchers = {(m.name, m.version): Batcher(m, settings.max_batch, settings.max_wait_ms, metrics) for m in registry.graphs()}
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(app):
        import gc

        for b in batchers.values():
            b.start()
        # what start-up built (the imported libraries, the loaded models) lives as long as the server: moved out of
        # the collector's reach, a full collection no longer walks its ~10^5 objects and stalls requests for ~0.1 s
        gc.collect()
        gc.freeze()
        state["ready"] = True
        yield
        state["ready"] = False
        gc.unfreeze()  # an app built inside a longer-lived process (tests, a notebook) leaves nothing frozen behind
        for b in batchers.values():
            await b.stop()

    app = FastAPI(title="forgeml model server", version="1", lifespan=lifespan,
                  description="Predictions from forgeml runs on ONNX Runtime. Models: " + ", ".join(registry.names())
                  + ". Each model's routes below take and return its own fields. `/v1/models/{name}/predict` and "
                  "`/v1/models/{name}/versions/{version}/predict` (and `.../explain`) answer the same for any served "
                  "name, and 404 for others.")
    app.state.registry, app.state.settings, app.state.metrics, app.state.batchers = registry, settings, metrics, batchers

    auth, auth_errors = [], ()
    if settings.api_key:  # documented as two security schemes; checked here by hand (either one will do)
        key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the server's API key")
        bearer = HTTPBearer(auto_error=False, description="the server's API key as a bearer token")

        def authorized(request: Request, _key=Security(key_header), _token=Security(bearer)) -> None:
            if not _key_matches(request.headers, settings.api_key):
                raise _Unauthorized

        auth, auth_errors = [Depends(authorized)], (401,)

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
        return error(422, "; ".join(problems) or "invalid request")

    def _lookup(name: str, version: Optional[str]):
        """(the served model, None), or (None, a 404 naming what is served)."""
        model = registry.get(name, version)
        return (model, None) if model is not None else (None, error(404, registry.missing(name, version)))

    def _instances(raw: bytes, limit: int, optional: tuple[str, ...] = ()):
        """(the JSON body, None), or (None, a 400/422 saying what is wrong with it). The body is parsed by hand
        so that deeply nested or non-finite JSON gets a 4xx instead of an exception."""
        shape = "{\"instances\": [{feature: value, ...}, ...]" + "".join(f", \"{k}\": ..." for k in optional) + "}"
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            return None, error(400, f"the body is not valid JSON (expected {shape})")
        if not isinstance(body, dict) or not isinstance(body.get("instances"), list) or set(body) - {"instances", *optional}:
            return None, error(422, f"the body must be an object {shape}: 'instances' is a non-empty list of objects"
                                    + (f"; {', '.join(optional)} optional" if optional else ""))
        if not body["instances"]:
            return None, error(422, "'instances' is empty")
        if len(body["instances"]) > limit:
            return None, error(422, f"{len(body['instances'])} instances in one request; the limit is {limit}")
        return body, None

    def _bad_input(exc: InputError):
        where = f"instances[{exc.row}]" + (f".{exc.field}" if exc.field else "") if exc.row is not None else "instances"
        return error(422, f"{where}: {exc}", field=exc.field, row=exc.row)

    async def _predicted(model, read_body):
        """The answer of a predict route (from FastAPI's routes and the predict lane, forgeml.serve.lane):
        ``read_body()`` gives the request's body."""
        if model.route != "predict":
            return error(409, model.elsewhere("predict"))
        batcher = batchers[(model.name, model.version)]
        batcher.arriving += 1  # from here until queued: the batcher may wait (up to max_wait_ms) for this request
        try:
            body, problem = _instances(await read_body(), settings.max_instances)
            if problem:
                return problem
            try:
                feed = model.feed(body["instances"])
            except InputError as exc:
                return _bad_input(exc)
        finally:
            batcher.arriving -= 1
        out = await batcher.submit(feed, len(body["instances"]))
        try:
            fields = model.response(out)
        except OutputError as exc:
            return error(422, f"instances[{exc.row}]: {exc}", row=exc.row)
        # a JSONResponse, not a dict: the response model documents the shape, re-validating it per request is waste
        return JSONResponse({"model": model.name, "version": model.version, **fields})

    async def _predict_with(model, request: Request):
        return await _predicted(model, request.body)

    async def _predict(name: str, version: Optional[str], request: Request):
        model, problem = _lookup(name, version)
        return problem or await _predict_with(model, request)

    from forgeml.explain.service import MAX_INSTANCES as EXPLAIN_MAX, ExplainProblem, Explainers, served_methods

    explainers = Explainers()  # torch/LightGBM models loaded from their runs on the first explain request

    async def _explain_with(model, request: Request):
        from starlette.concurrency import run_in_threadpool

        if model.route != "predict":
            return error(409, model.elsewhere("explain"))
        body, problem = _instances(await request.body(), EXPLAIN_MAX, optional=("method",))
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
            return error(exc.status, str(exc))
        return JSONResponse(result)

    async def _explain(name: str, version: Optional[str], request: Request):
        model, problem = _lookup(name, version)
        return problem or await _explain_with(model, request)

    async def _answer_with(model, request: Request):
        """A model that answers for itself (forgeml.serve.own_runs): its route, in a worker thread."""
        from starlette.concurrency import run_in_threadpool

        try:
            body = json.loads(await request.body())
        except (ValueError, RecursionError):
            return error(400, "the body is not valid JSON")
        try:
            return JSONResponse(await run_in_threadpool(model.answer, body))
        except ForgeMLError as exc:
            return error(422, str(exc))

    async def _action(name: str, version: Optional[str], action: str, request: Request):
        model, problem = _lookup(name, version)
        if problem:
            return problem
        if model.route != action:
            return error(404, f"model {name} answers POST .../{model.route}" + ("" if model.route != "predict" else
                                                                                 " and .../explain"))
        return await _answer_with(model, request)

    # ----- each served model's own routes, documented with its request and response models
    request_models, lane = [], {}  # each predict and infer path -> its FastAPI route, path parameters, answer
    posted = schemas.errors(400, *auth_errors, 413, 422)
    for m in registry.all():
        if m.route != "predict":
            _own_routes(app, m, registry.default[m.name] == m.version, _answer_with, auth, posted)
            continue
        s = schemas.build(m.name, m.version, m.signature, settings.max_instances, EXPLAIN_MAX, served_methods(m.manifest))
        request_models += [s.predict_request, s.explain_request]
        routes = [(f"/v1/models/{m.name}/versions/{m.version}", "/v1/models/{name}/versions/{version}", "_version", "")]
        if registry.default[m.name] == m.version:
            routes.insert(0, (f"/v1/models/{m.name}", "/v1/models/{name}", "", " (the default version)"))
        for prefix, generic, op, which in routes:
            what = f"{m.name}:{m.version}{which}"
            app.add_api_route(f"{prefix}/predict", _bound(_predict_with, m), methods=["POST"], dependencies=auth,
                              response_model=s.predict_response, responses=posted, tags=[m.name],
                              openapi_extra=schemas.body_doc(s.predict_request), summary=f"Predict with {what}",
                              operation_id=schemas.component_name(m.name, m.version, "predict" + op))
            lane[f"{prefix}/predict"] = (_label(app, f"{generic}/predict", m.name), {},
                                         lambda scope, read_body, m=m: _predicted(m, read_body))
            app.add_api_route(f"{prefix}/explain", _bound(_explain_with, m), methods=["POST"], dependencies=auth,
                              response_model=schemas.ExplainResponse, responses={**posted, **schemas.errors(409, 501)},
                              tags=[m.name], openapi_extra=schemas.body_doc(s.explain_request),
                              summary=f"Explain predictions of {what}",
                              operation_id=schemas.component_name(m.name, m.version, "explain" + op))
            _label(app, f"{generic}/explain", m.name)

    # ----- the same for any name (left out of the schema: it lists each model's own routes)
    @app.post("/v1/models/{name}/predict", dependencies=auth, include_in_schema=False)
    async def predict(name: str, request: Request):
        return await _predict(name, None, request)

    @app.post("/v1/models/{name}/versions/{version}/predict", dependencies=auth, include_in_schema=False)
    async def predict_version(name: str, version: str, request: Request):
        return await _predict(name, version, request)

    @app.post("/v1/models/{name}/explain", dependencies=auth, include_in_schema=False)
    async def explain(name: str, request: Request):
        return await _explain(name, None, request)

    @app.post("/v1/models/{name}/versions/{version}/explain", dependencies=auth, include_in_schema=False)
    async def explain_version(name: str, version: str, request: Request):
        return await _explain(name, version, request)

    # a route of a model that answers for itself (forecast), for any name; after predict and explain
    @app.post("/v1/models/{name}/{action}", dependencies=auth, include_in_schema=False)
    async def action(name: str, action: str, request: Request):
        return await _action(name, None, action, request)

    @app.post("/v1/models/{name}/versions/{version}/{action}", dependencies=auth, include_in_schema=False)
    async def action_version(name: str, version: str, action: str, request: Request):
        return await _action(name, version, action, request)

    def _info(m) -> dict:
        return {**m.describe(), "default": registry.default[m.name] == m.version}

    @app.get("/v1/models", response_model=schemas.ModelList, dependencies=auth, tags=["models"],
             responses=schemas.errors(*auth_errors), summary="The served models, their input and output schemas")
    async def list_models():
        return {"models": [_info(m) for m in registry.all()]}

    @app.get("/v1/models/{name}", response_model=schemas.ModelList, dependencies=auth, tags=["models"],
             responses=schemas.errors(*auth_errors, 404, 422), summary="The versions of one model")
    async def model_versions(name: str):
        if name not in registry.models:
            return error(404, registry.missing(name, None))
        return {"models": [_info(m) for m in registry.models[name].values()]}

    @app.get("/healthz", response_model=schemas.Health, tags=["health"], summary="Liveness")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", response_model=schemas.Readiness, tags=["health"], summary="Readiness",
             responses={503: {"model": schemas.Readiness, "description": "starting or stopping"}})
    async def readyz():
        ready = state["ready"] and all(b.running for b in batchers.values())
        return JSONResponse({"ready": ready, "models": registry.names()}, status_code=200 if ready else 503)

    from forgeml.serve import v2

    lane.update(v2.add_routes(app, registry, batchers, auth, settings,
                              ready=lambda: state["ready"] and all(b.running for b in batchers.values())))

    class Prometheus(Response):
        media_type = metrics.content_type

    text_format = {metrics.content_type: {"schema": {"type": "string"}}}

    @app.get("/metrics", response_class=Prometheus, tags=["health"], summary="Prometheus metrics",
             responses={200: {"description": "the Prometheus text format", "content": text_format}})
    async def prometheus():
        return Prometheus(metrics.render()[0])

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        from forgeml.serve.page import render

        return render(api_key_required=bool(settings.api_key))

    # the request models are documented, not FastAPI parameters (the body is read by hand): add their schemas
    original = app.openapi

    def openapi():
        if app.openapi_schema is None:
            schema = original()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(schemas.components(request_models))
            v2.document(schema, registry)
        return app.openapi_schema

    app.openapi = openapi
    if settings.max_body_bytes:
        app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    key = settings.api_key
    app.add_middleware(PredictLane, routes=lane, limit=settings.max_body_bytes,
                       authorized=(lambda raw: _key_matches(Headers(raw=raw), key)) if key else None)
    app.add_middleware(Measure, metrics=metrics, models=set(registry.models))
    return app


def _bound(handler, model):
    """A route endpoint for one served model."""
    async def endpoint(request: Request):
        return await handler(model, request)

    return endpoint


def _own_routes(app: FastAPI, m, default: bool, handler, auth: list, posted: dict) -> None:
    """The routes of a model that answers for itself, documented with the JSON schemas its run gives."""
    request, response = m.loaded.serve_schemas()
    body = {"requestBody": {"required": True, "content": {"application/json": {"schema": request}}}}
    answers = {200: {"description": "the answer", "content": {"application/json": {"schema": response}}}, **posted}
    prefixes = [(f"/v1/models/{m.name}/versions/{m.version}", "/v1/models/{name}/versions/{version}", "_version", "")]
    if default:
        prefixes.insert(0, (f"/v1/models/{m.name}", "/v1/models/{name}", "", " (the default version)"))
    for prefix, generic, op, which in prefixes:
        app.add_api_route(f"{prefix}/{m.route}", _bound(handler, m), methods=["POST"], dependencies=auth,
                          responses=answers, tags=[m.name], openapi_extra=body,
                          summary=f"{m.route.capitalize()} with {m.name}:{m.version}{which}",
                          operation_id=schemas.component_name(m.name, m.version, m.route + op))
        _label(app, f"{generic}/{m.route}", m.name)


def _label(app: FastAPI, template: str, model: str):
    """Metrics count the route just added under the generic route's template and the model's name; the route."""
    route = app.router.routes[-1]
    route.metric_route, route.metric_model = template, model
    return route


def _key_matches(headers: Headers, key: str) -> bool:
    """Whether the request sends the server's API key, as 'X-API-Key: KEY' or 'Authorization: Bearer KEY'."""
    given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ").strip()
    return bool(given) and hmac.compare_digest(given.encode(), key.encode())


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
