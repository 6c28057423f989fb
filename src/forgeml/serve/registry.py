"""The models a server holds: each a run's ONNX graph (int8 when `forgeml compress` made one) on ONNX Runtime.

Models are named by their run (``runs/churn`` -> ``churn``); ``NAME:VERSION=RUN`` serves several versions of one
name, and the last version given for a name is its default unless ``--default NAME:VERSION`` says otherwise.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Optional

import numpy as np

from forgeml import artifacts
from forgeml.errors import ConfigError, RunError
from forgeml.features import present
from forgeml.features.records import encode
from forgeml.run import signature
from forgeml.serve.schemas import finite_or_none

SPEC_RE = re.compile(r"^(?:(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(?::(?P<version>[A-Za-z0-9_.-]+))?=)?(?P<run>.+)$")


@dataclass
class ServedModel:
    name: str
    version: str
    run_dir: Path
    manifest: dict
    onnx_file: str
    precision: str
    session: object = field(repr=False, default=None)
    route = "predict"  # what its routes answer (a model that answers for itself: forgeml.serve.own_runs)

    @property
    def features(self) -> list[str]:
        return [f["name"] for f in self.manifest["features"]]

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def labels(self) -> Optional[list]:
        return self.manifest["target"].get("labels")

    @cached_property
    def fitted_task(self):
        """The run's task with its fitted state (labels, decision threshold, target scale)."""
        from forgeml.tasks import make_task

        return make_task(self.task, {k: v for k, v in self.manifest["target"].items() if k != "name"})

    def feed(self, rows: list[dict]) -> dict[str, np.ndarray]:
        return encode(rows, self.manifest["preprocessing"], self.features)

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, feed)[0]

    @cached_property
    def signature(self) -> dict:
        """What a client sends (``inputs``) and gets back (``outputs``): stored in the run (forgeml.run.signature)."""
        return signature(self.manifest)

    def response(self, out: np.ndarray) -> dict:
        """The response fields of the signature's ``outputs`` (beside model and version), from the graph's first
        output, as the run's task gives them (forgeml.core.Task.response)."""
        values = self.fitted_task.response(out, finite)
        return {k: values[k] for k in self.signature["outputs"]}

    def describe(self) -> dict:
        sig = self.signature
        return {"name": self.name, "version": self.version, "task": self.task, "model": self.manifest["model"]["name"],
                "precision": self.precision, "file": self.onnx_file, "input_schema": sig["inputs"],
                "output_schema": sig["outputs"], "route": self.route, "labels": self.labels, "target": self.manifest["target"].get("name"),
                "test_metrics": finite_or_none(self.manifest.get("metrics", {}).get("test"))}


class OutputError(ValueError):
    """The model computed something that is not a number for some instance (inputs far outside what it was trained
    on overflow float32): the server answers 422 naming the row."""

    def __init__(self, what: str, row: int):
        super().__init__(f"the model's {what} is not a finite number for this instance: its values are too far "
                         "outside the range the model was trained on")
        self.row = row


def finite(values: np.ndarray, what: str) -> np.ndarray:
    bad = ~np.isfinite(values)
    if bad.any():
        raise OutputError(what, int(np.argwhere(bad)[0][0]))
    return values


def parse_spec(spec: str) -> tuple[Optional[str], Optional[str], str]:
    m = SPEC_RE.match(spec)
    if not m:
        raise ConfigError(f"model {spec!r}: give RUN, NAME=RUN or NAME:VERSION=RUN")
    return m["name"], m["version"], m["run"]


def load_model(spec: str, precision: str = "auto", threads: Optional[int] = None, version: Optional[str] = None):
    """The served model of a run: its ONNX graph on ONNX Runtime (a ServedModel; exported on first serve), or the
    run's own Python object for a family that answers for itself (forgeml.serve.own_runs)."""
    from forgeml.export.runtime import session

    name, ver, run = parse_spec(spec)
    run_dir = artifacts.run_dir_of(run)
    manifest = artifacts.read_manifest(run_dir)
    if precision not in ("auto", "fp32", "int8"):
        raise ConfigError(f"--precision must be auto, fp32 or int8, got {precision!r}")
    from forgeml.serve import own_runs

    if own_runs.serves_itself(manifest):  # answered by the run's own models (forecasting), not an ONNX graph
        return own_runs.load(name or run_dir.name, ver or version or "1", run_dir, manifest)
    int8 = manifest.get("variants", {}).get("int8")
    if precision == "int8" and not (int8 and (run_dir / int8["file"]).is_file()):
        raise RunError(f"{run_dir} has no int8 model; run forgeml compress {run_dir} --quantize int8, or serve --precision fp32")
    if int8 and precision != "fp32" and (run_dir / int8["file"]).is_file():
        file, used = int8["file"], "int8"
    else:
        file, used = "model.onnx", "fp32"
        if not (run_dir / file).is_file():  # first serve of a run: export it now (needs the export extra)
            from forgeml.export.run import export

            try:
                export(run_dir)
            except PermissionError:
                raise RunError(f"{run_dir} has no model.onnx and is not writable; run 'forgeml export {run_dir}' where "
                               "the run folder can be written, then serve it") from None
    model = ServedModel(name or run_dir.name, ver or version or "1", run_dir, manifest, file, used)
    model.session = session(run_dir / file, threads)
    for ftype, state in present(manifest["preprocessing"]):
        ftype.load(state)  # what encoding requests needs (the text tokenizer), before the first request
    return model


class Registry:
    """name -> version -> model, with a default version per name."""

    def __init__(self):
        self.models: dict[str, dict[str, ServedModel]] = {}
        self.default: dict[str, str] = {}

    def add(self, model: ServedModel) -> None:
        versions = self.models.setdefault(model.name, {})
        if model.version in versions:
            raise ConfigError(f"model {model.name} version {model.version} is given twice; use NAME:VERSION=RUN")
        versions[model.version] = model
        self.default[model.name] = model.version

    def set_default(self, spec: str) -> None:
        name, _, version = spec.partition(":")
        if version not in self.models.get(name, {}):
            raise ConfigError(f"--default {spec}: no such model version; serving {self.names()}")
        self.default[name] = version

    def missing(self, name: str, version: Optional[str]) -> str:
        """Why ``get(name, version)`` found nothing, naming what is served (the 404 of v1 and v2)."""
        if name in self.models:
            return f"model {name} has no version {version}; versions: {sorted(self.models[name])}"
        return f"no model named {name!r}; serving {sorted(self.models)}"

    def names(self) -> list[str]:
        return [f"{n}:{v}" for n, vs in self.models.items() for v in vs]

    def get(self, name: str, version: Optional[str] = None) -> Optional[ServedModel]:
        versions = self.models.get(name)
        if not versions:
            return None
        return versions.get(version or self.default[name])

    def all(self) -> list:
        return [m for vs in self.models.values() for m in vs.values()]

    def graphs(self) -> list[ServedModel]:
        """The models served from an ONNX graph (predict, explain, v2)."""
        return [m for m in self.all() if isinstance(m, ServedModel)]


def build_registry(specs: list[str], precision: str = "auto", threads: Optional[int] = None,
                   default: Optional[list[str]] = None) -> Registry:
    if not specs:
        raise ConfigError("give at least one run to serve: forgeml serve runs/NAME")
    registry = Registry()
    counters: dict[str, int] = {}
    for spec in specs:
        name, version, run = parse_spec(spec)
        key = name or artifacts.run_dir_of(run).name
        counters[key] = counters.get(key, 0) + 1
        registry.add(load_model(spec, precision, threads, version=version or str(counters[key])))
    for d in default or []:
        registry.set_default(d)
    return registry
