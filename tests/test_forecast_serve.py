"""A forecasting run in production: ``forgeml serve`` answers POST /v1/models/NAME/forecast with a history (the same
forecasts as ``forgeml predict``), refuses the routes that serve ONNX graphs with the route to use, and ``forgeml
export`` writes a network's run as one ONNX graph (history in, forecast and intervals out) that onnxruntime runs alone
with the run's own numbers."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from forgeml import api

from conftest import cli, promo_panel, user_error

pytest.importorskip("fastapi", reason="the serve extra is not installed")
pytest.importorskip("httpx", reason="httpx is not installed")


@pytest.fixture(scope="module")
def lstm_run(air_csv, tmp_path_factory):
    return api.train({"name": "air", "runs_dir": str(tmp_path_factory.mktemp("runs")), "data": {"source": str(air_csv)},
                      "task": {"name": "forecasting", "horizon": 12}, "model": {"name": "lstm", "hidden": 16},
                      "train": {"epochs": 3}, "tracking": {"uri": "none"}}, quiet=True)


@pytest.fixture(scope="module")
def client(lstm_run):
    from fastapi.testclient import TestClient

    from forgeml.serve.app import create_app
    from forgeml.serve.registry import build_registry

    with TestClient(create_app(build_registry([f"air={lstm_run.run_dir}"]))) as c:
        yield c


def test_forecast_route_answers_like_predict(client, lstm_run, air_csv):
    model = client.get("/v1/models").json()["models"][0]
    assert model["route"] == "forecast" and model["task"] == "forecasting" and model["horizon"] == 12
    assert [f["name"] for f in model["input_schema"]] == ["time", "value"]
    history = model["example"]  # the end of the run's own series, as its file holds it (R decimal years)
    assert len(history) >= 24 and history[-1]["value"] == 432

    body = client.post("/v1/models/air/forecast", json={"history": history}).json()
    assert body["model"] == "air" and body["horizon"] == 12 and body["levels"] == [80, 95]
    (f,) = body["forecasts"]
    want = api.predict(lstm_run.run_dir, pd.DataFrame(history))
    np.testing.assert_allclose(f["forecast"], want["forecast"], rtol=1e-9)
    np.testing.assert_allclose(f["hi_95"], want["hi_95"], rtol=1e-9)
    assert f["times"][0] == "1961-01-01T00:00:00" and len(f["times"]) == 12
    assert all(lo <= y <= hi for lo, y, hi in zip(f["lo_80"], f["forecast"], f["hi_80"]))
    assert f["recent"]["values"][-1] == 432 and f["recent"]["times"][-1] == "1960-12-01T00:00:00"
    # the versioned route, and the history as rows in any order
    again = client.post("/v1/models/air/versions/1/forecast", json={"history": history[::-1]}).json()
    assert again["forecasts"][0]["forecast"] == f["forecast"]
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/models/air/forecast" in paths and "/v1/models/air/predict" not in paths


def test_bad_requests_get_a_4xx_naming_the_problem(client):
    def post(path, **kw):
        res = client.post(path, **kw)
        return res.status_code, res.json()

    status, body = post("/v1/models/air/forecast", content=b"{")
    assert status == 400 and "not valid JSON" in body["detail"]
    assert post("/v1/models/air/forecast", json={"history": []})[0] == 422
    status, body = post("/v1/models/air/forecast", json={"rows": [{"time": 1960.0}]})
    assert status == 422 and "time, value" in body["detail"]
    status, body = post("/v1/models/air/forecast", json={"history": [{"time": [1], "value": 1}]})
    assert status == 422 and "history[0]" in body["detail"]
    status, body = post("/v1/models/air/forecast", json={"history": [{"time": "soon", "value": 1}]})
    assert status == 422 and "'soon'" in body["detail"]
    status, body = post("/v1/models/air/forecast", json={"history": [{"time": 1960 + i / 12, "value": 100.0} for i in range(5)]})
    assert status == 422 and "5 points of history" in body["detail"]
    status, body = post("/v1/models/air/forecast", json={"history": [{"time": 1960 + i / 12, "value": None} for i in range(20)]})
    assert status == 422 and "no row of the history has a number in 'value'" in body["detail"]
    status, body = post("/v1/models/air/forecast", json={"history": [{"value": 1}]})
    assert status == 422 and "no column(s) ['time']" in body["detail"]
    # the routes that serve ONNX graphs say which route answers
    status, body = post("/v1/models/air/predict", json={"instances": [{"time": 1960.0}]})
    assert status == 409 and "/v1/models/air/versions/1/forecast" in body["detail"]
    status, body = post("/v2/models/air/infer", json={"inputs": []})
    assert status == 400 and "forecast" in body["error"]
    status, body = post("/v1/models/air/generate", json={})
    assert status == 404 and "forecast" in body["detail"]
    assert post("/v1/models/nope/forecast", json={})[0] == 404


def test_export_writes_the_networks_as_one_graph_with_the_runs_numbers(lstm_run, air_csv, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "air.onnx"
    assert cli("export", str(lstm_run.run_dir), "-o", str(out)) == 0
    manifest = json.loads((lstm_run.run_dir / "manifest.json").read_text())
    spec = manifest["export"]["onnx"]
    assert [i["name"] for i in spec["inputs"]] == ["history"]
    assert [o["name"] for o in spec["outputs"]] == ["forecast", "lo_80", "hi_80", "lo_95", "hi_95"]
    assert spec["parity"]["max_rel_diff"] < 1e-5

    session = ort.InferenceSession(str(out))
    df = pd.read_csv(air_csv)
    for n in (14, 40, len(df)):  # shorter than the window (padded as predict pads), longer, the whole series
        want = api.predict(lstm_run.run_dir, df.tail(n))
        got = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, {"history": df["value"].to_numpy(np.float32)[None, -n:]})))
        for col in ("forecast", "lo_80", "hi_95"):
            np.testing.assert_allclose(got[col][0], want[col], rtol=2e-5, atol=1e-3)
    # two series of one length in one call
    two = session.run(None, {"history": np.stack([df["value"].to_numpy(np.float32)[-60:], df["value"].to_numpy(np.float32)[-60:] * 2])})[0]
    np.testing.assert_allclose(two[1], 2 * two[0], rtol=1e-4)


def test_export_of_a_statistical_run_says_what_to_do(air_csv, tmp_path, capsys):
    run = api.train({"name": "ets", "runs_dir": str(tmp_path), "data": {"source": str(air_csv)},
                     "task": {"name": "forecasting", "horizon": 6}, "model": {"name": "ets"},
                     "tracking": {"uri": "none"}}, quiet=True)
    msg = user_error(capsys, "export", str(run.run_dir))
    assert "model is ets" in msg and "window network" in msg and "forecast" in msg
    assert not (run.run_dir / "model.onnx").exists()


def test_export_of_lightgbm_computes_its_features_in_the_graph(air_csv, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxmltools")
    run = api.train({"name": "lgbm", "runs_dir": str(tmp_path / "runs"), "data": {"source": str(air_csv)},
                     "task": {"name": "forecasting", "horizon": 12}, "model": {"name": "lightgbm_forecast", "n_estimators": 50},
                     "tracking": {"uri": "none"}}, quiet=True)
    out = tmp_path / "lgbm.onnx"
    assert cli("export", str(run.run_dir), "-o", str(out)) == 0
    spec = json.loads((run.run_dir / "manifest.json").read_text())["export"]["onnx"]
    assert [(i["name"], i["shape"]) for i in spec["inputs"]] == [("history", ["series", "length"]), ("calendar", ["series", 12, 1])]
    assert spec["inputs"][1]["columns"] == ["month (1-12)"]
    assert [o["name"] for o in spec["outputs"]] == ["forecast", "lo_80", "hi_80", "lo_95", "hi_95"]
    assert spec["parity"]["max_rel_diff"] < 1e-5

    session = ort.InferenceSession(str(out))
    model, df = api.load(run.run_dir), pd.read_csv(air_csv)
    for n in (20, len(df)):  # shorter than the window (padded as predict pads), the whole series
        want = api.predict(run.run_dir, df.tail(n))
        feeds = model.onnx_feeds(df.tail(n))
        assert list(feeds) == ["history", "calendar"] and feeds["calendar"][0, :, 0].tolist() == list(range(1, 13))
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        for col in ("forecast", "lo_80", "hi_95"):
            np.testing.assert_allclose(got[col][0], want[col], rtol=1e-4, atol=1e-3)


def test_export_of_lightgbm_with_a_known_covariate_and_a_static_column(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxmltools")
    df = promo_panel(days=120)
    df.to_csv(tmp_path / "sales.csv", index=False)
    run = api.train({"name": "sales", "runs_dir": str(tmp_path / "runs"),
                     "data": {"source": str(tmp_path / "sales.csv"), "target": "sales"},
                     "task": {"name": "forecasting", "horizon": 7, "id_col": "store", "time_col": "date",
                              "known": ["promo"], "windows": 1},
                     "model": {"name": "lightgbm_forecast", "n_estimators": 50}, "tracking": {"uri": "none"}}, quiet=True)
    out = tmp_path / "sales.onnx"
    assert cli("export", str(run.run_dir), "-o", str(out)) == 0
    spec = json.loads((run.run_dir / "manifest.json").read_text())["export"]["onnx"]
    inputs = {i["name"]: i for i in spec["inputs"]}
    assert list(inputs) == ["history", "calendar", "known", "static"]
    assert inputs["calendar"]["columns"] == ["month (1-12)", "day_of_week (0 = Monday)", "day_of_year (1-366)"]
    assert inputs["known"]["shape"] == ["series", 7, 1] and inputs["known"]["columns"] == ["promo"]
    assert inputs["static"]["columns"] == ["region"] and inputs["static"]["levels"] == {"region": ["north", "south"]}
    assert spec["parity"]["series"] == 3 and spec["parity"]["max_rel_diff"] < 1e-5  # from each series cut 7 days early

    # a plan for the next week, and a fourth store in a region the run never saw (its code: NaN)
    new = df[df["store"] == "s0"].assign(store="s3", region="east", sales=lambda d: d["sales"] * 1.5)
    last = pd.Timestamp(df["date"].max())
    future = pd.DataFrame([{"store": s, "date": (last + pd.Timedelta(days=d)).strftime("%Y-%m-%d"), "sales": None,
                            "promo": int(d % 2 == 0), "region": {"s1": "north", "s3": "east"}.get(s, "south")}
                           for s in ("s0", "s1", "s2", "s3") for d in range(1, 8)])
    history = pd.concat([df, new, future], ignore_index=True)
    want = api.predict(run.run_dir, history)
    feeds = api.load(run.run_dir).onnx_feeds(history)
    assert feeds["known"][:, :, 0].tolist() == [[int(d % 2 == 0) for d in range(1, 8)]] * 4
    np.testing.assert_array_equal(feeds["static"][:, 0], [1, 0, 1, np.nan])  # north, south sorted; east unseen
    session = ort.InferenceSession(str(out))
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    for i, store in enumerate(("s0", "s1", "s2", "s3")):
        mine = want[want["store"] == store]
        for col in ("forecast", "lo_80", "hi_95"):
            np.testing.assert_allclose(got[col][i], mine[col], rtol=1e-4, atol=1e-3)
