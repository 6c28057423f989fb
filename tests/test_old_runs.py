"""Runs written by the release before the four-interface redesign (manifest format 1, `task: auto` in config.yaml,
tests/fixtures/runs_v1) still load, predict, evaluate, export and serve with today's code."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forgeml import api
from forgeml.data.bundled import load_bundled

FIXTURES = Path(__file__).parent / "fixtures" / "runs_v1"


@pytest.fixture
def old_runs(tmp_path):
    """A writable copy (export and serve write into a run folder)."""
    shutil.copytree(FIXTURES, tmp_path / "runs")
    return tmp_path / "runs"


@pytest.mark.parametrize("name", ["iris-mlp-v1", "iris-lgb-v1"])
def test_an_old_run_evaluates_to_its_recorded_test_metrics(old_runs, name):
    run = old_runs / name
    assert json.loads((run / "manifest.json").read_text())["format_version"] == 1
    recorded = json.loads((run / "metrics.json").read_text())["test"]
    again = api.evaluate(run)  # replays the old config's split, loads the old weights
    for key in ("accuracy", "log_loss", "roc_auc"):
        assert again[key] == pytest.approx(recorded[key], abs=1e-6), key


def test_an_old_run_predicts_what_its_own_onnx_export_predicts(old_runs):
    """model.onnx was written by the old release: today's loader must give the same probabilities."""
    ort = pytest.importorskip("onnxruntime")
    run = old_runs / "iris-mlp-v1"
    rows = load_bundled("iris")[0].drop(columns=["species"]).head(20)
    ours = api.load(run).predict(rows)
    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    spec = json.loads((run / "manifest.json").read_text())["export"]["onnx"]["inputs"]
    feed = {i["name"]: rows[i["columns"]].to_numpy(np.float32) for i in spec}
    proba = session.run(["probabilities"], feed)[0]
    labels = api.load(run).labels
    np.testing.assert_allclose(ours[[f"proba_{c}" for c in labels]].to_numpy(), proba, atol=1e-5)
    assert list(ours["prediction"]) == [labels[i] for i in proba.argmax(axis=1)]


def test_an_old_run_is_served_and_reexported(old_runs):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from forgeml.serve.app import ServeSettings, create_app
    from forgeml.serve.registry import build_registry

    run = old_runs / "iris-lgb-v1"  # never exported: serving exports it now, with today's code
    registry = build_registry([str(run)])
    row = dict(zip(["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"], [6.3, 3.3, 6.0, 2.5]))
    with TestClient(create_app(registry, ServeSettings())) as client:
        r = client.post("/v1/models/iris-lgb-v1/predict", json={"instances": [row]})
    assert r.status_code == 200, r.text
    expected = api.load(run).predict(pd.DataFrame([row]))
    assert r.json()["predictions"] == list(expected["prediction"])
    assert (run / "model.onnx").is_file()
