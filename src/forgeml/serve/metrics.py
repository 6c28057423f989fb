"""Prometheus metrics of one server (its own registry, so several apps in one process do not collide)."""
from __future__ import annotations

from forgeml.errors import require


class Metrics:
    def __init__(self):
        prom = require("prometheus_client", "serve", "forgeml serve")
        prom.disable_created_metrics()  # *_created samples only add noise to a scrape
        self.registry = prom.CollectorRegistry()
        self.requests = prom.Counter("forgeml_requests", "HTTP requests by route, model and status code",
                                     ["route", "model", "status"], registry=self.registry)
        self.latency = prom.Histogram("forgeml_request_latency_seconds", "request latency in the server (seconds)",
                                      ["route", "model"], registry=self.registry,
                                      buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.batch_size = prom.Histogram("forgeml_batch_size", "rows per ONNX Runtime call (dynamic batching)", ["model"],
                                         registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self.queue_depth = prom.Gauge("forgeml_queue_depth", "requests waiting for a batch", ["model"], registry=self.registry)
        self._prom = prom

    @property
    def content_type(self) -> str:
        """The Prometheus text format's content type (with its version), as /metrics answers and documents it."""
        return self._prom.CONTENT_TYPE_LATEST

    def render(self) -> tuple[bytes, str]:
        return self._prom.generate_latest(self.registry), self.content_type
