"""The predict lane (forgeml.serve.lane): a served model's predict (v1) and infer (v2) paths are answered without
FastAPI's routing, with the same answers, metrics and errors as the FastAPI routes; every request it is not sure of
goes on to the app."""
import asyncio
import json

import pytest

from forgeml import api

from conftest import fast_train

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402

from forgeml.serve.app import ServeSettings, create_app  # noqa: E402
from forgeml.serve.lane import PredictLane  # noqa: E402
from forgeml.serve.registry import build_registry  # noqa: E402

ROWS = [{"student": "Yes", "balance": 1500.0, "income": 20000.0}, {"student": "No", "balance": None, "income": 45000}]


def _call(lane, method="POST", path="/v1/models/m/predict", headers=(), messages=None, sent=None):
    """Run one request through the lane: (the messages it sent, the paths the app behind it was called with)."""
    sent, behind = ([] if sent is None else sent), []
    pending = list(messages if messages is not None else [{"type": "http.request", "body": b"{}", "more_body": False}])

    async def receive():
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        behind.append(scope["path"])

    lane.app = app
    scope = {"type": "http", "method": method, "path": path, "headers": list(headers)}
    asyncio.run(lane(scope, receive, send))
    return sent, behind


def _lane(handled=None, limit=100, authorized=None, fail=False):
    async def answer(scope, read_body):
        body = await read_body()
        if fail:
            raise RuntimeError("the model broke")
        if handled is not None:
            handled.append((scope["path_params"]["name"], body))
        return JSONResponse({"model": scope["path_params"]["name"], "bytes": len(body)})

    return PredictLane(None, {"/v1/models/m/predict": ("route", {"name": "m"}, answer)}, limit, authorized)


def test_the_lane_answers_its_paths_and_leaves_everything_else_to_the_app():
    handled = []
    lane = _lane(handled)
    two_parts = [{"type": "http.request", "body": b'{"a"', "more_body": True}, {"type": "http.request", "body": b": 1}"}]
    sent, behind = _call(lane, headers=[(b"content-length", b"8")], messages=two_parts)
    assert behind == [] and handled == [("m", b'{"a": 1}')]
    assert sent[0]["status"] == 200 and json.loads(sent[1]["body"]) == {"model": "m", "bytes": 8}
    for kwargs in ({"method": "GET", "headers": [(b"content-length", b"2")]},  # not a POST
                   {"path": "/v1/models/other/predict", "headers": [(b"content-length", b"2")]},  # not a served path
                   {"headers": [(b"transfer-encoding", b"chunked")]},  # no Content-Length: BodyLimit counts the stream
                   {"headers": [(b"content-length", b"101")]},  # over the limit: the app's 413
                   {"headers": [(b"content-length", b"x")]}):
        sent, behind = _call(lane, **kwargs)
        assert behind and sent == [], kwargs


def test_the_lane_checks_the_key_and_leaves_a_wrong_one_to_the_app():
    lane = _lane(authorized=lambda raw: (b"x-api-key", b"k") in raw)
    _, behind = _call(lane, headers=[(b"content-length", b"2"), (b"x-api-key", b"wrong")])
    assert behind  # the app answers 401 as for every route
    sent, behind = _call(lane, headers=[(b"content-length", b"2"), (b"x-api-key", b"k")])
    assert not behind and sent[0]["status"] == 200


def test_a_failing_handler_answers_500_and_the_server_sees_the_exception():
    sent = []
    with pytest.raises(RuntimeError, match="the model broke"):
        _call(_lane(fail=True), headers=[(b"content-length", b"2")], sent=sent)
    assert sent[0]["status"] == 500 and sent[1]["body"] == b"Internal Server Error"


def test_a_client_gone_before_its_body_gets_no_answer():
    sent, behind = _call(_lane(), headers=[(b"content-length", b"2")], messages=[])
    assert sent == [] and behind == []


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    run = api.train({"name": "default-mlp", "runs_dir": str(tmp_path_factory.mktemp("runs")), "data": {"source": "bundled:default"},
                     "model": {"name": "mlp"}, "tracking": {"uri": "none"}, "train": fast_train(epochs=2)}, quiet=True).run_dir
    return run


def _chunked(body: bytes):
    yield body[:10]
    yield body[10:]


def test_the_lane_and_the_fastapi_route_give_the_same_answers_metrics_and_errors(served):
    app = create_app(build_registry([f"m={served}"]), ServeSettings(api_key="s3cret"))
    body = json.dumps({"instances": ROWS}).encode()
    key = {"x-api-key": "s3cret", "content-type": "application/json"}
    with TestClient(app) as client:
        for path in ("/v1/models/m/predict", "/v1/models/m/versions/1/predict"):
            fast = client.post(path, content=body, headers=key)  # Content-Length: the lane
            slow = client.post(path, content=_chunked(body), headers=key)  # chunked: FastAPI's route
            assert "content-length" not in slow.request.headers
            assert fast.status_code == slow.status_code == 200 and fast.json() == slow.json()
            assert fast.json()["predictions"] in (["Yes", "No"], ["No", "No"], ["No", "Yes"], ["Yes", "Yes"])
            assert fast.headers["server-timing"].startswith("app;dur=") and slow.headers["server-timing"].startswith("app;dur=")
            bad = json.dumps({"instances": [{**ROWS[0], "balance": "a lot"}]}).encode()
            fast_bad = client.post(path, content=bad, headers=key)
            slow_bad = client.post(path, content=_chunked(bad), headers=key)
            assert fast_bad.status_code == slow_bad.status_code == 422 and fast_bad.json() == slow_bad.json()
            assert fast_bad.json()["field"] == "balance" and fast_bad.json()["row"] == 0
        tensors = {"inputs": [{"name": k, "shape": [2], "datatype": "BYTES" if k == "student" else "FP64",
                               "data": [r[k] for r in ROWS]} for k in ROWS[0]]}
        v2 = json.dumps(tensors).encode()
        for path in ("/v2/models/m/infer", "/v2/models/m/versions/1/infer"):
            fast = client.post(path, content=v2, headers=key)
            slow = client.post(path, content=_chunked(v2), headers=key)
            assert fast.status_code == slow.status_code == 200 and fast.json() == slow.json()
            assert fast.json()["outputs"][0]["data"] == client.post("/v1/models/m/predict", content=body, headers=key).json()["predictions"]
        wrong = json.dumps({"inputs": [{**tensors["inputs"][1], "datatype": "BOOL"}, *tensors["inputs"][::2]]}).encode()
        fast_bad = client.post("/v2/models/m/infer", content=wrong, headers=key)
        assert fast_bad.status_code == 400 and fast_bad.json() == client.post("/v2/models/m/infer", content=_chunked(wrong), headers=key).json()
        assert "balance" in fast_bad.json()["error"]
        assert client.post("/v1/models/m/predict", content=body).status_code == 401  # no key: left to the app
        assert client.post("/v1/models/m/predict", content=body, headers={"x-api-key": "nope"}).status_code == 401
        metrics = client.get("/metrics", headers=key).text
    # both ways counted under the generic route's template and the model's name (v1 predict: 2 more from the v2 check)
    assert 'forgeml_requests_total{model="m",route="/v1/models/{name}/predict",status="200"} 4.0' in metrics
    assert 'forgeml_requests_total{model="m",route="/v1/models/{name}/versions/{version}/predict",status="200"} 2.0' in metrics
    assert 'forgeml_requests_total{model="m",route="/v1/models/{name}/predict",status="422"} 2.0' in metrics
    assert 'forgeml_requests_total{model="m",route="/v1/models/{name}/predict",status="401"} 2.0' in metrics
    assert 'forgeml_requests_total{model="m",route="/v2/models/{name}/infer",status="200"} 2.0' in metrics
    assert 'forgeml_requests_total{model="m",route="/v2/models/{name}/versions/{version}/infer",status="200"} 2.0' in metrics
    assert 'forgeml_requests_total{model="m",route="/v2/models/{name}/infer",status="400"} 2.0' in metrics
