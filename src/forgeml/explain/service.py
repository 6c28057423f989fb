"""Explanations for the model server (POST /v1/models/{name}/explain).

The server predicts with ONNX Runtime; attributions need the trained model itself, so each run's torch/LightGBM
model is loaded from its run folder (forgeml.load) on its first explain request and kept. One explanation at a time
per model: Captum's hooks on a shared module must not interleave.
"""
from __future__ import annotations

import threading

from forgeml.errors import ConfigError, MissingExtraError, RunError

MAX_INSTANCES = 32  # explaining is far heavier than predicting (IG: 50 forward/backward passes per row)


class ExplainProblem(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Explainers:
    def __init__(self):
        self._models: dict[tuple[str, str], object] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def method(self, served, method) -> str:
        """The method for a request, or 422 (unknown, or not one that fits this model)."""
        from forgeml.explain.methods import local_method

        if method is not None and not isinstance(method, str):
            raise ExplainProblem(422, "'method' must be a string: gradcam, ig or lime")
        try:
            return local_method(served.manifest, method)
        except ConfigError as exc:
            raise ExplainProblem(422, str(exc)) from None

    def _lock(self, key) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _model(self, served):
        key = (served.name, served.version)
        if key not in self._models:
            from forgeml.run import load

            try:
                self._models[key] = load(served.run_dir)
            except RunError as exc:
                raise ExplainProblem(409, f"cannot explain {served.name}: {exc}") from None
        return self._models[key]

    def explain(self, served, rows: list[dict], method: str) -> dict:
        """Blocking work (run it in a thread): per-instance attributions as JSON-able records."""
        from forgeml.explain.inputs import encode_rows
        from forgeml.explain.local import explain_local, record
        from forgeml.explain.run import BASELINES, units_of
        from forgeml.explain.methods import kind_of
        from forgeml.data.records import InputError

        with self._lock((served.name, served.version)):
            try:
                model = self._model(served)
                arrays, frame = encode_rows(model, rows)
                local = explain_local(model, arrays, frame, method)
            except MissingExtraError as exc:
                raise ExplainProblem(501, str(exc)) from None
            except InputError as exc:
                where = f"instances[{exc.row}]" + (f".{exc.field}" if exc.field else "") if exc.row is not None else "instances"
                raise ExplainProblem(422, f"{where}: {exc}") from None
        return {"model": served.name, "version": served.version, "method": method, "task": model.task.name,
                "labels": model.labels, "units": units_of(model, None), "baseline": BASELINES[kind_of(model.manifest)],
                "explanations": [record(model, local, i) for i in range(len(rows))]}
