"""Explanations for the model server (POST /v1/models/{name}/explain).

The server predicts with ONNX Runtime; attributions need the trained model itself, so each run's torch/LightGBM
model is loaded from its run folder (forgeml.load) on its first explain request and kept. One explanation at a time
per model: Captum's hooks on a shared module must not interleave. Anomaly runs answer each column's share of each
row's score (method ``reconstruction`` or ``permutation``, see forgeml.explain.anomaly).
"""
from __future__ import annotations

import threading

from forgeml.errors import ConfigError, MissingExtraError, RunError

MAX_INSTANCES = 32  # explaining is far heavier than predicting (IG: 50 forward/backward passes per row)


def served_methods(manifest: dict) -> tuple[str, ...]:
    """The methods POST .../explain takes for this run (the request schema's enum)."""
    from forgeml.explain import anomaly
    from forgeml.explain.methods import LOCAL, applicable

    if anomaly.is_scores_run(manifest):
        return tuple(anomaly.applicable(manifest))
    return tuple(m for m in applicable(manifest) if m in LOCAL)


class ExplainProblem(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Explainers:
    def __init__(self):
        self._models: dict[tuple[str, str], object] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._references: dict[tuple[str, str], tuple] = {}  # anomaly runs: permutation's reference rows
        self._guard = threading.Lock()

    def method(self, served, method) -> str:
        """The method for a request, or 422 (unknown, or not one that fits this model)."""
        from forgeml.explain.methods import local_method

        from forgeml.explain.anomaly import is_scores_run, methods_for

        if is_scores_run(served.manifest):  # anomaly scores: reconstruction or permutation (explain/anomaly.py)
            try:
                return methods_for(served.manifest, method)[0]
            except ConfigError as exc:
                raise ExplainProblem(422, str(exc)) from None
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
        from forgeml.explain.run import baseline_of, units_of
        from forgeml.explain.methods import kind_of
        from forgeml.features.records import InputError

        with self._lock((served.name, served.version)):
            try:
                model = self._model(served)
                arrays, frame = encode_rows(model, rows)
                if "scores" in model.task.tags:
                    return self._scores(served, model, arrays, frame, method)
                local = explain_local(model, arrays, frame, method)
            except MissingExtraError as exc:
                raise ExplainProblem(501, str(exc)) from None
            except InputError as exc:
                where = f"instances[{exc.row}]" + (f".{exc.field}" if exc.field else "") if exc.row is not None else "instances"
                raise ExplainProblem(422, f"{where}: {exc}") from None
        return {"model": served.name, "version": served.version, "method": method, "task": model.task.name,
                "labels": model.labels, "units": units_of(model, None), "baseline": baseline_of(model, kind_of(model.manifest)),
                "explanations": [record(model, local, i) for i in range(len(rows))]}

    def _scores(self, served, model, arrays, frame, method: str) -> dict:
        """An anomaly run: each column's share of each row's score (forgeml.explain.anomaly). Permutation draws from
        the run's training rows, read once per model (the typical row when its data can no longer be read)."""
        from forgeml.explain import anomaly as an
        from forgeml.run import split_rows

        key = (served.name, served.version)
        reference = None
        if method == "permutation":
            if key not in self._references:
                splits = split_rows(model)
                self._references[key] = an.reference_arrays(model, splits["train"] if splits else None)
            reference = self._references[key]
        sh = an.explain_rows(model, arrays, method, reference)
        values = an.table_values(model, frame)
        return {"model": served.name, "version": served.version, "method": method, "task": model.task.name,
                "labels": None, "units": an.UNITS, "baseline": sh.reference, "threshold": model.task.state.get("threshold"),
                "explanations": [an.record(model, sh, k, values[k] if values else None) for k in range(len(sh.scores))]}
