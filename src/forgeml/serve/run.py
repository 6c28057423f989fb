"""`forgeml serve`: check the options, load the models, run uvicorn (or Ray Serve)."""
from __future__ import annotations

import os
from typing import Optional

from forgeml.errors import ConfigError, require

# no proxy-header rewriting: nothing here reads the client's address, and checking X-Forwarded-* against the trusted
# hosts cost ~0.07 ms per request (benchmarks/serve_profile.py)
UVICORN = {"log_level": "warning", "timeout_graceful_shutdown": 30, "proxy_headers": False}


def serve(specs: list[str], host: str = "127.0.0.1", port: int = 8000, workers: int = 1, max_batch: int = 64,
          max_wait_ms: float = 5.0, precision: str = "auto", default: Optional[list[str]] = None,
          api_key: Optional[str] = None, max_body_mb: float = 8.0, threads: Optional[int] = None,
          ray: bool = False, replicas: int = 1) -> None:
    from forgeml.serve.app import API_KEY_ENV, CONFIG_ENV, ServeSettings, create_app, settings_json
    from forgeml.serve.registry import build_registry

    if not 1 <= port <= 65535:
        raise ConfigError(f"--port must be 1..65535, got {port}")
    if workers < 1 or max_batch < 1 or max_wait_ms < 0 or max_body_mb <= 0 or replicas < 1:
        raise ConfigError("--workers, --max-batch and --replicas must be >= 1, --max-wait-ms >= 0 and --max-body-mb > 0")
    uvicorn = require("uvicorn", "serve", "forgeml serve")
    settings = ServeSettings(max_batch=max_batch, max_wait_ms=max_wait_ms, api_key=api_key or os.environ.get(API_KEY_ENV) or None,
                             max_body_bytes=int(max_body_mb * 1024 * 1024))
    if not ray:  # Ray Serve's proxy takes the port later, in its own process
        from forgeml.serve.workers import check_port

        check_port(host, port)
    registry = build_registry(specs, precision, threads, default)  # load (and export) in this process: errors surface here
    if ray:
        from forgeml.serve.ray_serve import deploy

        del registry  # it only checked the runs here: each replica loads its own

        return deploy(specs, precision, threads, default, settings, host, port, replicas)
    for m in registry.all():
        print(f"serving {m.name}:{m.version} ({m.task}, {m.manifest['model']['name']}, {m.precision}: {m.run_dir / m.onnx_file})")
    print(f"http://{host}:{port}/  (docs: /docs, metrics: /metrics){'  API key required' if settings.api_key else ''}", flush=True)
    common = {"host": host, "port": port, **UVICORN}
    if workers == 1:
        uvicorn.run(create_app(registry, settings), **common)
    else:
        from forgeml.serve import workers as supervisor

        os.environ[CONFIG_ENV] = settings_json(specs, precision, threads, default, settings)
        del registry  # it only checked the runs here: each worker loads its own
        if supervisor.balanced():  # a socket per worker: the kernel spreads the connections (see serve/workers.py)
            supervisor.run(host, port, workers, UVICORN)
        else:
            uvicorn.run(supervisor.APP, factory=True, workers=workers, **common)
