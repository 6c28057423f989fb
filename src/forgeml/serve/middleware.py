"""ASGI middleware of the model server: the body size limit (413) and the request metrics with Server-Timing.
Plain ASGI rather than @app.middleware("http"), which costs a task and a stream per request."""
from __future__ import annotations

import time

from starlette.responses import JSONResponse

from forgeml.serve.metrics import Metrics


def error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"detail": message, **extra}, status_code=status)


class BodyLimit:
    """Refuse bodies over the limit with 413, by Content-Length or while streaming (chunked requests)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        too_big = error(413, f"request body larger than {self.limit} bytes")
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
    A served model's own routes (/v1/models/churn/predict) count under the generic route's template and its name."""

    def __init__(self, app, metrics: Metrics, models: set[str]):
        self.app, self.metrics, self.models = app, metrics, models
        self._children: dict[tuple[str, str, int], tuple] = {}  # prometheus' labels() lookup, once per label set

    def _metrics_for(self, route: str, model: str, status: int) -> tuple:
        key = (route, model, status)
        if key not in self._children:
            self._children[key] = (self.metrics.requests.labels(route, model, str(status)), self.metrics.latency.labels(route, model))
        return self._children[key]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        tic = time.perf_counter()

        async def timed(message):
            if message["type"] == "http.response.start":
                seconds = time.perf_counter() - tic
                matched = scope.get("route")
                route = getattr(matched, "metric_route", None) or getattr(matched, "path", "unmatched")
                name = getattr(matched, "metric_model", None) or scope.get("path_params", {}).get("name", "")
                model = name if name in self.models else ("unknown" if name else "")
                count, latency = self._metrics_for(route, model, message["status"])
                count.inc()
                latency.observe(seconds)
                message["headers"] = [*message.get("headers", []), (b"server-timing", f"app;dur={seconds * 1000:.3f}".encode())]
            await send(message)

        await self.app(scope, receive, timed)
