"""The predict lane: ``POST`` to a served model's predict (v1) or infer (v2) path, answered without Starlette's
routing and FastAPI's request handling.

For a one-row request those cost more CPU than forgeml's own work (reading the body, encoding the rows, the batch,
the response): in benchmarks/serve_profile.py, FastAPI's per-request machinery (its exception and exit-stack layers,
matching the path against every route, solving the route's dependencies, building a Request) was the largest part of
the event loop's time after uvicorn's own. The lane answers the same paths with the same handlers as the FastAPI routes,
which stay for the OpenAPI document and for every request the lane leaves alone: a body without a Content-Length
(chunked) or over the limit, and a missing or wrong API key, go on to the app, which answers them as before (413, 401).
"""
from __future__ import annotations

from typing import Awaitable, Callable, Optional

from starlette.responses import PlainTextResponse

Answer = Callable[[dict, Callable[[], Awaitable[bytes]]], Awaitable[object]]


class PredictLane:
    """ASGI middleware. ``routes``: path -> (the FastAPI route it stands for, that route's path parameters, and
    ``answer(scope, read_body)``, which returns the response); ``authorized(raw_headers)`` checks the API key on the
    scope's header list, or is None when the server has no key."""

    def __init__(self, app, routes: dict[str, tuple[object, dict, Answer]], limit: int,
                 authorized: Optional[Callable[[list], bool]] = None):
        self.app, self.routes, self.limit, self.authorized = app, routes, limit, authorized

    async def __call__(self, scope, receive, send):
        lane = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if lane is None:
            return await self.app(scope, receive, send)
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if (declared is None or not declared.isdigit() or (self.limit and int(declared) > self.limit)
                or (self.authorized is not None and not self.authorized(scope["headers"]))):
            return await self.app(scope, receive, send)
        # what the metrics label the request by (forgeml.serve.middleware.Measure), as the router would set them
        scope["route"], scope["path_params"], answer = lane

        async def body() -> bytes:
            chunks = []
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGone
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    return b"".join(chunks)

        try:
            response = await answer(scope, body)
        except _ClientGone:
            return  # nobody to answer
        except Exception:
            # as Starlette's ServerErrorMiddleware does on the app's routes: a 500 the metrics count, then the
            # exception goes on to the server, which logs it
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        await response(scope, receive, send)


class _ClientGone(Exception):
    pass
