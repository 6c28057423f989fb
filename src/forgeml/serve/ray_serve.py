"""`forgeml serve --ray`: the same FastAPI app, deployed as N Ray Serve replicas on a local Ray instance.

Each replica is its own process: it loads every model (its own ONNX Runtime sessions) and batches its own requests
with the app's Batcher. Ray Serve's proxy listens on host:port and spreads requests over the replicas.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Optional

from forgeml.errors import ConfigError, require

APP_NAME = "forgeml"


def _absolute(spec: str) -> str:
    """Replicas need not share the driver's working directory: pass them absolute run folders."""
    from forgeml import artifacts
    from forgeml.serve.registry import parse_spec

    name, version, run = parse_spec(spec)
    run_dir = Path(artifacts.run_dir_of(run)).absolute()
    return f"{name or run_dir.name}{':' + version if version else ''}={run_dir}"


def _check_port(host: str, port: int) -> None:
    """Fail with one line, before Ray starts, when the address is taken (Ray's proxy would fail with a traceback)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port") from None


def _builder(specs, precision, threads, default, settings):
    """The app factory Ray Serve calls once in each replica, when the replica starts."""

    def build():
        from forgeml.serve.app import create_app
        from forgeml.serve.registry import build_registry

        return create_app(build_registry(specs, precision, threads, default), settings)

    return build


class ForgeMLServer:
    """The Ray Serve deployment class: all routes come from the app built by `_builder`."""


def deploy(specs: list[str], precision: str, threads: Optional[int], default: Optional[list[str]], settings,
           host: str, port: int, replicas: int) -> None:
    """Serve `specs` on Ray Serve with `replicas` replicas at http://host:port/ until Ctrl-C or SIGTERM."""
    ray = require("ray", "cluster", "forgeml serve --ray")
    serve = require("ray.serve", "cluster", "forgeml serve --ray")

    specs = [_absolute(s) for s in specs]
    _check_port(host, port)
    # each replica gets a share of the cores for ONNX Runtime unless --threads says otherwise
    threads = threads or max(1, (os.cpu_count() or 1) // replicas)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray would otherwise report usage over the network
    # one logical CPU per replica; Serve's controller and proxy take none
    ray.init(address="local", num_cpus=replicas, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # we print where it listens ourselves
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": host, "port": port})
        ingress = serve.ingress(_builder(specs, precision, threads, default, settings))(ForgeMLServer)
        deployment = serve.deployment(name=APP_NAME, num_replicas=replicas, ray_actor_options={"num_cpus": 1})(ingress)
        serve.run(deployment.bind(), name=APP_NAME, route_prefix="/")  # returns once every replica is running
        for spec in specs:
            print(f"serving {spec}")
        key = "  API key required" if settings.api_key else ""
        print(f"http://{host}:{port}/  (Ray Serve, {replicas} replica(s) x {threads} ONNX Runtime thread(s); "
              f"docs: /docs, metrics: /metrics per replica){key}", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        print("stopping Ray Serve ...", flush=True)
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
