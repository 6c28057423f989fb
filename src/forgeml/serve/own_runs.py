"""Models the server answers with their run's own Python object instead of an ONNX graph.

A family that keeps its models its own way (tagged ``own_run``: forecasting, whose ETS, Theta and ARIMA re-run their
smoothing over each posted history; or ``own_route``: generation, whose route draws images) loads its run with ``load_run``; when that object names a ``serve_route``, the
server adds ``POST /v1/models/NAME[/versions/V]/ROUTE`` and hands each request body to its ``answer(body)``, in a
worker thread. The object also gives ``serve_schemas()`` (the request and response JSON schemas, for /docs) and
``serve_example()`` (a body the web page starts from). Nothing here knows a family's name.

Predict, explain and the Open Inference Protocol serve ONNX graphs; for these models they answer with the route to use.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from forgeml.serve.schemas import finite_or_none


@dataclass
class RunServed:
    name: str
    version: str
    run_dir: Path
    manifest: dict
    loaded: object = field(repr=False)
    precision: str = "python"

    @property
    def route(self) -> str:
        return self.loaded.serve_route

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def onnx_file(self) -> str:
        return self.manifest["model"].get("file", "")

    @cached_property
    def example(self):
        return self.loaded.serve_example()

    def answer(self, body) -> dict:
        return {"model": self.name, "version": self.version, **self.loaded.answer(body)}

    def elsewhere(self, what: str) -> str:
        """Why ``what`` (predict, explain, v2 infer) does not answer for this model, and what does."""
        body = getattr(self.loaded, "serve_body", "its history")  # what a request to its route holds, in words
        return (f"model {self.name} is a {self.task} model: {what} serves ONNX models; POST {body} to "
                f"/v1/models/{self.name}/versions/{self.version}/{self.route}")

    def describe(self) -> dict:
        task = self.loaded.task
        return {"name": self.name, "version": self.version, "task": self.task, "model": self.manifest["model"]["name"],
                "precision": self.precision, "file": self.onnx_file, "route": self.route,
                "input_schema": task.request_fields(), "output_schema": task.response_fields(),
                "labels": None, "target": self.manifest["target"].get("name"),
                "horizon": getattr(self.loaded, "horizon", None), "example": self.example,
                "test_metrics": finite_or_none(self.manifest.get("metrics", {}).get("test"))}


def serves_itself(manifest: dict) -> bool:
    """Whether a run's family loads and answers for its run itself: tagged ``own_run`` (it also trains its own way:
    forecasting) or ``own_route`` (trained by the shared pipeline, served on its own route: generation)."""
    from forgeml.tasks import task_tags

    return bool({"own_run", "own_route"} & task_tags(manifest["task"]))


def load(name: str, version: str, run_dir: Path, manifest: dict) -> RunServed:
    from forgeml.errors import RunError
    from forgeml.run import load as load_run

    loaded = load_run(run_dir)
    if not getattr(loaded, "serve_route", None):
        raise RunError(f"{run_dir} is a {manifest['task']} run, which forgeml serve does not answer for yet")
    served = RunServed(name, version, run_dir, manifest, loaded)
    served.example  # read the run's data now, not on the first request
    return served
