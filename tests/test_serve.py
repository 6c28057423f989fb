"""forgeml serve: predictions equal the trained model's, versions, auth, limits, 4xx for every bad request,
Prometheus metrics, dynamic batching, graceful shutdown and a 10,000-request reliability run."""
import asyncio
import base64
import io
import json
import re
import threading
import time

import numpy as np
import pandas as pd
import pytest

from forgeml import api
from forgeml.data.bundled import load_bundled

from conftest import cli, fast_train, user_error

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from forgeml.serve.app import ServeSettings, create_app  # noqa: E402
from forgeml.serve.registry import build_registry  # noqa: E402

ROW = {"student": "Yes", "balance": 1500.0, "income": 20000.0}


def _train(runs, name, source, model, **train):
    return api.train({"name": name, "runs_dir": str(runs), "data": {"source": source}, "model": model,
                      "tracking": {"uri": "none"}, "train": fast_train(**train)}, quiet=True).run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"mlp": _train(root, "default-mlp", "bundled:default", {"name": "mlp"}, epochs=2),
            "lgb": _train(root, "default-lgb", "bundled:default", {"name": "lightgbm", "n_estimators": 40}),
            "digits": _train(root, "digits", "bundled:digits", {"name": "cnn", "channels": [8, 16]}, epochs=2),
            "diabetes": _train(root, "diabetes", "bundled:diabetes", {"name": "mlp"}, epochs=2)}


@pytest.fixture(scope="module")
def client(runs):
    registry = build_registry([f"default:1={runs['mlp']}", f"default:2={runs['lgb']}", str(runs["digits"]), str(runs["diabetes"])])
    with TestClient(create_app(registry, ServeSettings(max_body_bytes=200_000, max_instances=100))) as c:
        yield c


def _post(c, path, body, **kw):
    return c.post(path, content=body if isinstance(body, (str, bytes)) else json.dumps(body),
                  headers={"content-type": "application/json", **kw.pop("headers", {})}, **kw)


def test_predictions_equal_the_trained_model(client, runs):
    rows = [ROW, {"student": "No", "balance": None, "income": 45000}, {"student": "Maybe", "balance": 2500, "income": 1e4}]
    r = _post(client, "/v1/models/default/versions/1/predict", {"instances": rows})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = api.load(runs["mlp"]).predict(pd.DataFrame(rows))
    assert body["predictions"] == expected["prediction"].tolist()
    assert np.abs(np.array(body["probabilities"]) - expected[["proba_No", "proba_Yes"]].to_numpy()).max() < 1e-5
    assert body["labels"] == ["No", "Yes"] and body["model"] == "default" and body["version"] == "1"


def test_regression_and_images_nested_list_or_base64(client, runs):
    df, _ = load_bundled("diabetes")
    row = df.drop(columns=["target"] if "target" in df else df.columns[-1:]).iloc[0].to_dict()
    r = _post(client, "/v1/models/diabetes/predict", {"instances": [row]})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0] == pytest.approx(api.load(runs["diabetes"]).predict([row])["prediction"][0], rel=1e-5)

    digits, _ = load_bundled("digits")
    image = digits["image"][5]  # 0..16 floats, as the run was trained on
    as_list = _post(client, "/v1/models/digits/predict", {"instances": [{"image": image.tolist()}]}).json()
    expected = api.load(runs["digits"]).predict([image])
    assert as_list["predictions"] == [expected["prediction"][0]]
    png = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.round(image * 255 / 16).astype(np.uint8), mode="L").save(png, format="PNG")
    as_file = _post(client, "/v1/models/digits/predict",
                    {"instances": [{"image": base64.b64encode(png.getvalue()).decode()}]}).json()
    # the same picture as an 8-bit PNG lands on the model's own 0..16 scale
    assert np.abs(np.array(as_file["probabilities"]) - np.array(as_list["probabilities"])).max() < 0.02


def test_versions_default_and_listing(client):
    default = _post(client, "/v1/models/default/predict", {"instances": [ROW]}).json()
    assert default["version"] == "2"  # the last version given is the default
    models = client.get("/v1/models").json()["models"]
    by = {(m["name"], m["version"]): m for m in models}
    assert by[("default", "2")]["default"] and not by[("default", "1")]["default"]
    assert by[("default", "2")]["model"] == "lightgbm"
    assert {f["name"]: f["type"] for f in by[("default", "1")]["input_schema"]} == {"student": "categorical", "balance": "numeric",
                                                                                    "income": "numeric"}
    assert client.get("/v1/models/default").status_code == 200
    assert client.get("/v1/models/nope").status_code == 404
    r = _post(client, "/v1/models/default/versions/9/predict", {"instances": [ROW]})
    assert r.status_code == 404 and "versions" in r.json()["detail"]


BAD = [
    ("not json", "nope", 400),
    ("deeply nested", "[" * 100_000 + "]" * 100_000, None),  # 400 or 413: never 5xx
    ("not an object", [ROW], 422),
    ("no instances", {"rows": [ROW]}, 422),
    ("extra top-level key", {"instances": [ROW], "x": 1}, 422),
    ("empty", {"instances": []}, 422),
    ("instance not an object", {"instances": [1]}, 422),
    ("missing field", {"instances": [{"student": "Yes", "balance": 1.0}]}, 422),
    ("extra field", {"instances": [{**ROW, "age": 3}]}, 422),
    ("wrong type", {"instances": [{**ROW, "balance": "a lot"}]}, 422),
    ("boolean number", {"instances": [{**ROW, "balance": True}]}, 422),
    ("NaN", '{"instances": [{"student": "Yes", "balance": NaN, "income": 1}]}', 422),
    ("infinity", '{"instances": [{"student": "Yes", "balance": 1, "income": -Infinity}]}', 422),
    ("nested category", {"instances": [{**ROW, "student": {"a": 1}}]}, 422),
    ("lone surrogate category", '{"instances": [{"student": "\\ud800", "balance": 1, "income": 1}]}', 422),
    ("lone surrogate field name", '{"instances": [{"student": "Yes", "balance": 1, "income": 1, "\\udc00": 1}]}', 422),
    ("huge integer", '{"instances": [{"student": "Yes", "balance": 1' + "0" * 400 + ', "income": 1}]}', 422),
    ("beyond float32", {"instances": [{**ROW, "balance": 1e39}]}, 422),
    ("numeric list", {"instances": [{**ROW, "balance": [1, 2]}]}, 422),
    ("too many instances", {"instances": [ROW] * 101}, 422),
    ("oversized body", {"instances": [{**ROW, "student": "x" * 300_000}]}, 413),
]


@pytest.mark.parametrize("what, body, status", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_a_4xx_with_a_message(client, what, body, status):
    r = _post(client, "/v1/models/default/versions/1/predict", body)
    assert (r.status_code == status) if status else (400 <= r.status_code < 500), (r.status_code, r.text)
    assert r.json()["detail"]


def test_field_errors_name_the_row_and_field(client):
    r = _post(client, "/v1/models/default/predict", {"instances": [ROW, {**ROW, "income": "rich"}]})
    assert r.status_code == 422 and r.json()["detail"].startswith("instances[1].income:")
    r = _post(client, "/v1/models/digits/predict", {"instances": [{"image": [[1, 2, 3]] * 2 + [[1]]}]})
    assert r.status_code == 422 and "instances[0].image" in r.json()["detail"]
    r = _post(client, "/v1/models/digits/predict", {"instances": [{"image": [[[[1]]]]}]})
    assert r.status_code == 422 and "H x W" in r.json()["detail"]
    r = _post(client, "/v1/models/digits/predict", {"instances": [{"image": "bm90IGFuIGltYWdl"}]})
    assert r.status_code == 422 and "base64-encoded image" in r.json()["detail"]
    r = _post(client, "/v1/models/digits/predict", {"instances": [{"image": [["1", "2"], ["3", "4"]]}]})
    assert r.status_code == 422 and "nested list of numbers" in r.json()["detail"]
    r = _post(client, "/v1/models/digits/predict", {"instances": [{"image": [[10 ** 400, 1], [1, 1]]}]})
    assert r.status_code == 422


def test_health_docs_and_metrics(client):
    import gc

    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    assert gc.get_freeze_count() > 10_000  # start-up objects (libraries, models) frozen out of the collector
    spec = client.get("/openapi.json").json()
    assert "default_v2_PredictRequest" in spec["components"]["schemas"] and "/v1/models/default/predict" in spec["paths"]
    assert "/v1/models/{name}/predict" not in spec["paths"]  # the generic routes work but the schema lists each model's
    assert client.get("/docs").status_code == 200
    _post(client, "/v1/models/default/predict", {"instances": [ROW]})
    _post(client, "/v1/models/default/predict", "nope")
    text = client.get("/metrics").text
    assert 'forgeml_requests_total{model="default",route="/v1/models/{name}/predict",status="200"}' in text
    assert 'status="400"' in text
    assert "forgeml_request_latency_seconds_bucket" in text and "forgeml_batch_size_bucket" in text
    assert 'forgeml_queue_depth{model="default"}' in text


def test_web_page_is_served_self_contained_and_talks_to_the_json_api(client):
    """The page at / without a browser (the browser tests in test_serve_page.py skip without chromium)."""
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "<title>forgeml model server</title>" in html and 'data-api-key-required="false"' in html
    assert "{{" not in html  # every template slot filled
    # one self-contained document: no external script, stylesheet or URL to fetch
    assert not re.search(r"<script[^>]*\bsrc=|<link[^>]*stylesheet|(?:src|href)=[\"']?(?:https?:)?//", html)
    # its script asks the same JSON API as any client for the models, and posts predictions to it
    assert 'fetch("/v1/models"' in html and "/predict`" in html


def test_api_key(runs, monkeypatch):
    registry = build_registry([str(runs["mlp"])])
    with TestClient(create_app(registry, ServeSettings(api_key="s3cret"))) as c:
        path = "/v1/models/default-mlp/predict"
        assert _post(c, path, {"instances": [ROW]}).status_code == 401
        assert _post(c, path, {"instances": [ROW]}, headers={"x-api-key": "wrong"}).status_code == 401
        assert _post(c, path, {"instances": [ROW]}, headers={"x-api-key": "s3cret"}).status_code == 200
        assert _post(c, path, {"instances": [ROW]}, headers={"authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/v1/models").status_code == 401
        assert c.get("/healthz").status_code == 200  # probes stay open
        page = c.get("/")  # the page opens without the key and shows its key field
        assert page.status_code == 200 and 'data-api-key-required="true"' in page.text


def test_int8_model_is_served_when_present_unless_fp32_is_asked(runs):
    import onnxruntime as ort

    run = runs["mlp"]
    assert cli("compress", str(run), "--quantize", "int8", "-q") == 0
    df, target = load_bundled("default")
    rows = df.drop(columns=[target]).sample(200, random_state=0).to_dict("records")
    feed = build_registry([str(run)], precision="fp32").all()[0].feed(rows)  # the graphs' inputs for these rows

    def onnx_proba(file):  # what onnxruntime alone computes with each file, normalized as the server does
        out = ort.InferenceSession(str(run / file), providers=["CPUExecutionProvider"]).run(None, feed)[0].astype(np.float64)
        return out / out.sum(axis=1, keepdims=True)

    int8, fp32 = onnx_proba("model.int8.onnx"), onnx_proba("model.onnx")
    assert np.abs(int8 - fp32).max() > 1e-4  # quantization changes the numbers, so the files can be told apart

    def served(precision):
        with TestClient(create_app(build_registry([str(run)], precision=precision), ServeSettings())) as c:
            r = _post(c, "/v1/models/default-mlp/predict", {"instances": rows})
            listed = c.get("/v1/models").json()["models"][0]
        assert r.status_code == 200, r.text
        return np.array(r.json()["probabilities"]), listed

    proba, listed = served("auto")  # int8 by default once it exists
    assert listed["precision"] == "int8" and listed["file"] == "model.int8.onnx"
    assert np.abs(proba - int8).max() < 1e-5 and np.abs(proba - fp32).max() > 1e-4
    proba, listed = served("fp32")
    assert listed["precision"] == "fp32" and listed["file"] == "model.onnx"
    assert np.abs(proba - fp32).max() < 1e-5 and np.abs(proba - int8).max() > 1e-4


# ----------------------------------------------------------------------------------------- a real server
class Server:
    """uvicorn in a thread on 127.0.0.1 and a free port."""

    def __init__(self, app):
        import socket

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error",
                                                    timeout_graceful_shutdown=30))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        for _ in range(200):
            try:
                if httpx.get(self.url + "/readyz").status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)


async def _fire(url: str, bodies: list, concurrency: int) -> list:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as c:
        sem = asyncio.Semaphore(concurrency)

        async def one(body):
            async with sem:
                content = body if isinstance(body, (str, bytes)) else json.dumps(body)
                r = await c.post("/v1/models/default-mlp/predict", content=content, headers={"content-type": "application/json"})
                return r.status_code, r.text

        return await asyncio.gather(*(one(b) for b in bodies))


def _slowed(registry, seconds: float):
    """Make the model take a while per call, so concurrent requests are surely in flight together."""
    model = registry.all()[0]
    fast_run = model.run
    model.run = lambda feed: (time.sleep(seconds), fast_run(feed))[1]
    return registry


def test_concurrent_requests_all_answered_over_http(runs):
    app = create_app(build_registry([str(runs["mlp"])], precision="fp32"), ServeSettings(max_batch=64, max_wait_ms=5))
    with Server(app) as server:
        results = asyncio.run(_fire(server.url, [{"instances": [ROW]}] * 300, 32))
        metrics = httpx.get(server.url + "/metrics").text
    assert [c for c, _ in results] == [200] * 300
    assert "forgeml_batch_size_sum{model=\"default-mlp\"} 300.0" in metrics


class _SlowEcho:
    """A stand-in model: returns its input rows after a pause, and records each call's batch size."""

    name = "echo"

    def __init__(self):
        self.calls = []

    def run(self, feed):
        self.calls.append(len(feed["x"]))
        time.sleep(0.02)
        return feed["x"] * 2


def test_batcher_groups_concurrent_requests_and_returns_each_its_own_rows():
    from forgeml.serve.batching import Batcher

    model = _SlowEcho()

    async def main():
        batcher = Batcher(model, max_batch=16, max_wait_ms=5)
        batcher.start()
        sizes = [1] * 40 + [10, 10, 3]
        starts = np.cumsum([0] + sizes[:-1])
        outs = await asyncio.gather(*(batcher.submit({"x": np.arange(s, s + n)[:, None]}, n) for s, n in zip(starts, sizes)))
        await batcher.stop()
        return sizes, starts, outs

    sizes, starts, outs = asyncio.run(main())
    for s, n, out in zip(starts, sizes, outs):
        assert out[:, 0].tolist() == list(range(2 * s, 2 * (s + n), 2))  # each request gets its own rows back
    assert max(model.calls) <= 16 and sum(model.calls) == sum(sizes)
    assert len(model.calls) <= 6  # 63 rows in batches of up to 16, not 43 calls


def test_a_quick_model_runs_on_the_event_loop_and_a_slow_one_in_the_inference_thread():
    """Handing a batch to the thread and back costs ~0.2 ms: a model measured quicker than that per batch runs inline;
    one slower stays off the event loop. A single slow batch of a quick model (a hiccup: here a 5 ms stall on the
    third call) does not send it back to the thread."""
    from forgeml.serve.batching import INLINE_SECONDS, Batcher

    class Model:
        name = "m"

        def __init__(self, seconds, stall_on=None):
            self.seconds, self.stall_on, self.threads = seconds, stall_on, []

        def run(self, feed):
            self.threads.append(threading.current_thread().name)
            time.sleep(0.005 if len(self.threads) == self.stall_on else self.seconds)
            return feed["x"]

    async def main(model):
        batcher = Batcher(model, max_batch=8, max_wait_ms=0)
        batcher.start()
        for i in range(6):
            assert (await batcher.submit({"x": np.array([[i]])}, 1)).tolist() == [[i]]
        await batcher.stop()

    quick, slow = Model(0.0, stall_on=3), Model(4 * INLINE_SECONDS)
    asyncio.run(main(quick))
    asyncio.run(main(slow))
    # timed in the thread until one quick measurement (the first, unless the machine stalled it too), then inline
    in_thread = [t.startswith("onnx-m") for t in quick.threads]
    assert in_thread[0] and not any(in_thread[3:]), quick.threads
    assert in_thread == sorted(in_thread, reverse=True), quick.threads  # once inline, inline through the stall
    assert all(t.startswith("onnx-m") for t in slow.threads)


def test_a_request_that_breaks_its_batch_fails_alone():
    from forgeml.serve.batching import Batcher

    class Picky(_SlowEcho):
        def run(self, feed):
            if (feed["x"] < 0).any():
                raise ValueError("bad row")
            return super().run(feed)

    async def main():
        batcher = Batcher(Picky(), max_batch=16, max_wait_ms=5)
        batcher.start()
        values = [1, 2, -1, 3]
        outs = await asyncio.gather(*(batcher.submit({"x": np.array([[v]])}, 1) for v in values), return_exceptions=True)
        await batcher.stop()
        return outs

    outs = asyncio.run(main())
    assert isinstance(outs[2], ValueError)
    assert [o[0, 0] for i, o in enumerate(outs) if i != 2] == [2, 4, 6]


def test_shutdown_finishes_requests_already_in_flight(runs):
    app = create_app(_slowed(build_registry([str(runs["mlp"])]), 0.3), ServeSettings(max_batch=4, max_wait_ms=0))
    results = {}
    with Server(app) as server:
        t = threading.Thread(target=lambda: results.update(r=asyncio.run(_fire(server.url, [{"instances": [ROW]}] * 12, 12))))
        t.start()
        time.sleep(0.4)  # all 12 sent, the first batch computing, the rest queued
        server.server.should_exit = True  # what SIGTERM does
        t.join(timeout=60)
    assert [c for c, _ in results["r"]] == [200] * 12


@pytest.mark.slow
def test_10000_requests_with_10_percent_malformed_never_5xx(runs):
    import resource

    rng = np.random.default_rng(0)
    malformed = [body for what, body, _ in BAD if what != "oversized body"] + ["{" * 5000, '{"instances": [{"student": 1e999}]}']
    cases = []
    for i in range(10_000):
        if rng.random() < 0.1:
            cases.append((malformed[i % len(malformed)], True))
        else:
            row = {"student": str(rng.choice(["Yes", "No"])), "balance": float(rng.uniform(0, 2500)), "income": float(rng.uniform(1e3, 7e4))}
            cases.append(({"instances": [row]}, False))
    is_bad = np.array([b for _, b in cases])
    app = create_app(build_registry([str(runs["mlp"])]), ServeSettings(max_instances=100))
    with Server(app) as server:
        asyncio.run(_fire(server.url, [body for body, _ in cases[:500]], 16))  # warm-up: allocator and caches settle
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        results = asyncio.run(_fire(server.url, [body for body, _ in cases], 16))
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert httpx.get(server.url + "/healthz").status_code == 200
        assert httpx.get(server.url + "/readyz").status_code == 200
        assert httpx.post(server.url + "/v1/models/default-mlp/predict", json={"instances": [ROW]}).status_code == 200
    codes = np.array([c for c, _ in results])
    assert not (codes >= 500).any()
    assert (codes[~is_bad] == 200).all()
    assert ((codes[is_bad] >= 400) & (codes[is_bad] < 500)).all() and is_bad.sum() > 800
    assert all(json.loads(text)["detail"] for (_, text), bad in zip(results, is_bad) if bad)
    assert rss_after - rss_before < 200 * 1024  # KiB (Linux ru_maxrss): memory stays bounded over 10,000 requests


def test_serve_command_refuses_bad_setups_with_exit_2(runs, tmp_path, capsys):
    assert cli("serve", str(tmp_path / "missing")) == 2
    assert "run folder not found" in capsys.readouterr().err
    assert cli("serve", str(runs["digits"]), "--precision", "int8") == 2
    assert "no int8 model" in capsys.readouterr().err
    assert user_error(capsys, "serve", runs["digits"], "--port", "0") == "error: --port must be 1..65535, got 0"
    assert cli("serve", f"a:1={runs['digits']}", f"a:1={runs['diabetes']}") == 2
    assert "given twice" in capsys.readouterr().err
    message = user_error(capsys, "serve", runs["digits"], "--default", "digits:7")
    assert message.startswith("error: --default digits:7: no such model version") and "digits:1" in message
