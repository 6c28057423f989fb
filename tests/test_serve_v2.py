"""The Open Inference Protocol (KServe v2 / Triton HTTP) beside v1: Triton's own Python client (binary and JSON tensors)
gets the predictions v1 gives; metadata and health answer as the protocol says; every bad request is a 400 (404 for
an unknown model) whose {"error"} names the tensor; schemathesis finds no 5xx and no response off its schema."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from forgeml.data.bundled import load_bundled

from conftest import train_quick

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from forgeml.serve.app import ServeSettings, create_app  # noqa: E402
from forgeml.serve.registry import build_registry  # noqa: E402

ROWS = [{"student": "Yes", "balance": 1500.0, "income": 20000.0}, {"student": "No", "balance": None, "income": 45000.0},
        {"student": "No", "balance": 2100.5, "income": 31000.0}]



@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2")
    df, target = load_bundled("default")
    few = pd.concat([df[df[target] == "Yes"].head(150), df[df[target] == "No"].head(250)])
    few.to_csv(root / "churn.csv", index=False)
    return {"churn": train_quick(root, "churn", str(root / "churn.csv"), {"name": "mlp", "hidden": [16]}, target),
            "diabetes": train_quick(root, "diabetes", "bundled:diabetes", {"name": "lightgbm", "n_estimators": 20}),
            "digits": train_quick(root, "digits", "bundled:digits", {"name": "cnn", "channels": [8, 16]})}


@pytest.fixture(scope="module")
def client(runs):
    registry = build_registry([str(runs["churn"]), f"diabetes:1={runs['diabetes']}", f"diabetes:2={runs['diabetes']}",
                               str(runs["digits"])])
    with TestClient(create_app(registry, ServeSettings(max_instances=50))) as c:
        yield c


def _tensors(rows):
    return [{"name": "student", "shape": [len(rows)], "datatype": "BYTES", "data": [r["student"] for r in rows]},
            {"name": "balance", "shape": [len(rows), 1], "datatype": "FP64", "data": [r["balance"] for r in rows]},
            {"name": "income", "shape": [len(rows)], "datatype": "FP32", "data": [r["income"] for r in rows]}]


def _outputs(body):
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in body["outputs"]}


def test_json_tensors_give_the_v1_predictions(client):
    v1 = client.post("/v1/models/churn/predict", json={"instances": ROWS}).json()
    r = client.post("/v2/models/churn/infer", json={"id": "req-7", "inputs": _tensors(ROWS)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("churn", "1", "req-7")
    out = _outputs(body)
    assert out["predictions"].tolist() == v1["predictions"] and out["labels"].tolist() == v1["labels"]
    np.testing.assert_allclose(out["probabilities"], v1["probabilities"], atol=1e-6)
    assert [o["datatype"] for o in body["outputs"]] == ["BYTES", "FP32", "BYTES"]
    # only the outputs asked for; nested data is row-major like flat data
    nested = _tensors(ROWS)
    nested[1]["data"] = [[v] for v in nested[1]["data"]]
    body = client.post("/v2/models/churn/infer", json={"inputs": nested, "outputs": [{"name": "predictions"}]}).json()
    assert [o["name"] for o in body["outputs"]] == ["predictions"] and body["outputs"][0]["data"] == v1["predictions"]


def test_images_regression_and_versions(client, runs):
    digits, _ = load_bundled("digits")
    pixels = np.stack(digits["image"].head(4).tolist()).astype(np.float32)
    v1 = client.post("/v1/models/digits/predict", json={"instances": [{"image": p.tolist()} for p in pixels]}).json()
    body = client.post("/v2/models/digits/infer", json={"inputs": [
        {"name": "image", "shape": [4, 8, 8], "datatype": "FP32", "data": pixels.reshape(-1).tolist()}]}).json()
    assert _outputs(body)["predictions"].tolist() == v1["predictions"]
    assert [o["datatype"] for o in body["outputs"]][0] == "INT64"  # digit labels are integers
    diabetes, target = load_bundled("diabetes")
    rows = diabetes.drop(columns=[target]).head(3)
    tensors = [{"name": c, "shape": [3], "datatype": "FP64", "data": rows[c].tolist()} for c in rows.columns]
    v1 = client.post("/v1/models/diabetes/predict", json={"instances": rows.to_dict("records")}).json()
    body = client.post("/v2/models/diabetes/versions/2/infer", json={"inputs": tensors}).json()
    assert body["model_version"] == "2"
    np.testing.assert_allclose(_outputs(body)["predictions"], v1["predictions"], rtol=1e-5)


def test_metadata_and_health(client):
    import forgeml

    assert client.get("/v2").json() == {"name": "forgeml", "version": forgeml.__version__, "extensions": ["binary_tensor_data"]}
    assert client.get("/v2/health/live").status_code == 200 and client.get("/v2/health/ready").status_code == 200
    meta = client.get("/v2/models/churn").json()
    assert meta["platform"] == "onnxruntime_onnx" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "student", "datatype": "BYTES", "shape": [-1]},
                              {"name": "balance", "datatype": "FP32", "shape": [-1]},
                              {"name": "income", "datatype": "FP32", "shape": [-1]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [
        ("predictions", "BYTES", [-1]), ("probabilities", "FP32", [-1, -1]), ("labels", "BYTES", [-1])]
    assert client.get("/v2/models/digits").json()["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 8, 8]}]
    assert client.get("/v2/models/diabetes").json()["versions"] == ["1", "2"]
    assert client.get("/v2/models/diabetes/versions/2/ready").status_code == 200
    assert client.get("/v2/models/nope/ready").json() == {"error": "no model named 'nope'; serving ['churn', 'diabetes', 'digits']"}


def _bad(rows=ROWS, **change):
    tensors = _tensors(rows)
    for key, value in change.items():
        index, field = key.split("__")
        tensors[int(index)][field] = value
    return {"inputs": tensors}


BAD = [
    ("not json", "nope", "not valid JSON"),
    ("no inputs", {"outputs": []}, "'inputs': a non-empty list"),
    ("unknown tensor", {"inputs": [*_tensors(ROWS), {"name": "age", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}]},
     "input 'age': the model has no such input"),
    ("missing tensor", {"inputs": _tensors(ROWS)[:2]}, "missing input(s) ['income']"),
    ("twice", {"inputs": [*_tensors(ROWS), _tensors(ROWS)[0]]}, "input 'student' is given twice"),
    ("wrong datatype", _bad(**{"1__datatype": "BYTES", "1__data": ["1", "2", "3"]}), "input 'balance' (numeric): datatype BYTES"),
    ("unknown datatype", _bad(**{"2__datatype": "FP128"}), "input 'income': datatype 'FP128'"),
    ("shape and data disagree", _bad(**{"2__shape": [4]}), "input 'income': 3 elements do not fill shape [4]"),
    ("batch sizes disagree", _bad(**{"0__shape": [1], "0__data": ["Yes"]}), "input 'balance': batch size 3 differs from the other inputs' 1"),
    ("matrix for a scalar", _bad(**{"2__shape": [1, 3]}), "input 'income': takes one value per instance, shape [N] or [N, 1]; got [1, 3]"),
    ("negative dimension", _bad(**{"2__shape": [-3]}), "input 'income': shape must be"),
    ("strings as numbers", _bad(**{"2__data": ["a", "b", "c"]}), "input 'income': FP32 data must be numbers"),
    ("floats as integers", _bad(**{"2__datatype": "INT64", "2__data": [1.5, 2.0, 3.0]}), "input 'income': INT64 data must be integers"),
    ("overflow", _bad(**{"2__datatype": "INT64", "2__data": [10 ** 30, 1, 2]}), "input 'income': a value does not fit INT64"),
    ("beyond float32", _bad(**{"2__datatype": "FP64", "2__data": [1e39, 1.0, 2.0]}), "input 'income'[0]: must be a finite number"),
    ("numbers as bytes", _bad(**{"0__data": [1, 2, 3]}), "input 'student': BYTES data in JSON must be strings"),
    ("unknown output", {"inputs": _tensors(ROWS), "outputs": [{"name": "logits"}]}, "output 'logits': the model has no such output"),
    ("too deep", _bad(**{"2__data": [[[[[[[[[[1]]]]]]]]], 2, 3]}), "nested deeper than a tensor"),
    ("no data", _bad(**{"2__data": None}), "input 'income': 'data' must be a list"),
    ("too many instances", {"inputs": _tensors(ROWS * 20)}, "60 instances in one request; the limit is 50"),
]


@pytest.mark.parametrize("what, body, message", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_are_400_naming_the_tensor(client, what, body, message):
    r = client.post("/v2/models/churn/infer", content=body if isinstance(body, str) else json.dumps(body),
                    headers={"content-type": "application/json"})
    assert r.status_code == 400 and list(r.json()) == ["error"], r.text
    assert message in r.json()["error"], r.json()


def test_unknown_model_and_version_are_404(client):
    r = client.post("/v2/models/nope/infer", json={"inputs": _tensors(ROWS)})
    assert r.status_code == 404 and "no model named 'nope'" in r.json()["error"]
    assert client.get("/v2/models/diabetes/versions/9").json()["error"].startswith("model diabetes has no version 9")


def test_binary_tensor_data_in_and_out(client):
    """The binary extension as tritonclient sends it, by hand: lengths in the JSON, bytes after it."""
    student = b"".join(len(s).to_bytes(4, "little") + s for s in (b"Yes", b"No", b"No"))
    balance = np.array([1500.0, np.nan, 2100.5], dtype=np.float32).tobytes()
    income = np.array([20000, 45000, 31000], dtype=np.int32).tobytes()
    head = json.dumps({"inputs": [
        {"name": "student", "shape": [3], "datatype": "BYTES", "parameters": {"binary_data_size": len(student)}},
        {"name": "balance", "shape": [3, 1], "datatype": "FP32", "parameters": {"binary_data_size": len(balance)}},
        {"name": "income", "shape": [3], "datatype": "INT32", "parameters": {"binary_data_size": len(income)}}],
        "parameters": {"binary_data_output": True}}).encode()
    r = client.post("/v2/models/churn/infer", content=head + student + balance + income,
                    headers={"Inference-Header-Content-Length": str(len(head)), "content-type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    meta, blob = json.loads(r.content[:n]), r.content[n:]
    sizes = [o["parameters"]["binary_data_size"] for o in meta["outputs"]]
    assert sum(sizes) == len(blob) and meta["outputs"][1]["shape"] == [3, 2]
    probabilities = np.frombuffer(blob[sizes[0]:sizes[0] + sizes[1]], dtype=np.float32).reshape(3, 2)
    v1 = client.post("/v1/models/churn/predict", json={"instances": ROWS}).json()
    np.testing.assert_allclose(probabilities, v1["probabilities"], atol=1e-6)
    # a size that runs past the data, and bytes left over, are refused
    r = client.post("/v2/models/churn/infer", content=head + student + balance,
                    headers={"Inference-Header-Content-Length": str(len(head))})
    assert r.status_code == 400 and "input 'income': binary_data_size 12 runs past" in r.json()["error"]
    r = client.post("/v2/models/churn/infer", content=head + student + balance + income + b"xx",
                    headers={"Inference-Header-Content-Length": str(len(head))})
    assert r.status_code == 400 and "2 bytes of binary data belong to no input" in r.json()["error"]


TRITON = """
import json, sys
import numpy as np
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

c = triton.InferenceServerClient(url=sys.argv[1])
rows = json.loads(sys.argv[2])
out = {"live": c.is_server_live(), "ready": c.is_server_ready(), "model_ready": c.is_model_ready("churn"),
       "metadata": c.get_model_metadata("churn")}

def inputs(binary):
    student = triton.InferInput("student", [len(rows)], "BYTES")
    student.set_data_from_numpy(np.array([r["student"] for r in rows], dtype=object), binary_data=binary)
    balance = triton.InferInput("balance", [len(rows), 1], "FP32")
    balance.set_data_from_numpy(np.array([[np.nan if r["balance"] is None else r["balance"]] for r in rows], dtype=np.float32),
                                binary_data=binary)
    income = triton.InferInput("income", [len(rows)], "FP64")
    income.set_data_from_numpy(np.array([r["income"] for r in rows]), binary_data=binary)
    return [student, balance, income]

binary = c.infer("churn", inputs(True))  # tritonclient's default: binary tensors both ways
out["binary"] = {"predictions": [p.decode() for p in binary.as_numpy("predictions")],
                 "probabilities": binary.as_numpy("probabilities").tolist()}
asked = [triton.InferRequestedOutput("probabilities", binary_data=False)]
plain = c.infer("churn", inputs(False), outputs=asked, request_id="r1")
out["json"] = {"probabilities": plain.as_numpy("probabilities").tolist(), "id": plain.get_response()["id"]}
bad = inputs(False)
bad[2] = triton.InferInput("income", [len(rows) + 1], "FP64")
bad[2].set_data_from_numpy(np.zeros(len(rows) + 1))
try:
    c.infer("churn", bad)
except InferenceServerException as exc:
    out["error"] = [exc.status(), exc.message()]
print(json.dumps(out))
"""


def test_tritonclient_calls_the_server_as_it_calls_triton(runs):
    pytest.importorskip("tritonclient.http", reason="tritonclient (the dev extra) is not installed")
    from test_serve import Server

    app = create_app(build_registry([str(runs["churn"])]), ServeSettings())
    with Server(app) as server:
        v1 = httpx.post(server.url + "/v1/models/churn/predict", json={"instances": ROWS}).json()
        done = subprocess.run([sys.executable, "-c", TRITON, server.url.removeprefix("http://"), json.dumps(ROWS)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["live"] and out["ready"] and out["model_ready"] and out["metadata"]["name"] == "churn"
    assert out["binary"]["predictions"] == v1["predictions"]
    np.testing.assert_allclose(out["binary"]["probabilities"], v1["probabilities"], atol=1e-6)
    np.testing.assert_allclose(out["json"]["probabilities"], v1["probabilities"], atol=1e-6)
    assert out["json"]["id"] == "r1"
    assert out["error"][0] == "400" and "batch size 4 differs from the other inputs' 3" in out["error"][1]


def test_schemathesis_finds_no_5xx_on_the_v2_routes(runs):
    """JSON Schema cannot tie a tensor's shape to its data, so a schema-valid body may be refused: the checks here are
    the ones that hold anyway, no 5xx and every answer on its documented schema."""
    schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (the dev extra) is not installed")
    from schemathesis.config import CacheConfig
    from schemathesis.engine import Status, events, from_schema
    from schemathesis.python.asgi import shutdown_lifespans

    app = create_app(build_registry([str(runs["churn"]), str(runs["digits"])]), ServeSettings(max_instances=50))
    config = schemathesis.Config(seed=1, cache=CacheConfig(enabled=False))
    config.projects.default.generation.update(max_examples=40, deterministic=True, database="none")
    config.projects.default.checks.update(included_check_names=["not_a_server_error", "status_code_conformance",
                                                                "content_type_conformance", "response_schema_conformance"])
    failures, answers = [], Counter()
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config).include(path_regex="^/v2")
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                for checks in event.recorder.checks.values():
                    failures += [f"{event.recorder.label} [{c.name}] {c.failure_info.failure.title}"
                                 for c in checks if c.status == Status.FAILURE and c.failure_info]
                answers.update((event.recorder.label, i.response.status_code)
                               for i in event.recorder.interactions.values() if i.response is not None)
            elif isinstance(event, (events.NonFatalError, events.FatalError)):
                failures.append(str(getattr(event, "info", None) or getattr(event, "exception", None))[:300])
    finally:
        shutdown_lifespans()
    assert not failures, "\n".join(sorted(set(failures)))
    assert answers[("POST /v2/models/{name}/infer", 400)] >= 10 and answers[("GET /v2/models/{name}", 200)] >= 1, answers
    assert not any(status >= 500 for (_, status) in answers)


def _mutations(rng, n: int) -> list[tuple[bytes, dict]]:
    """n v2 bodies, each valid or broken in one random way (a tensor's name, datatype, shape, data or parameters, the
    JSON itself, the binary header), with the headers to send."""
    values = [None, True, -1, 0, 2 ** 70, 1e308, "", "x" * 50, [], [[]], {}, {"a": 1}, [1, "a"], "\ud800"]
    out = []
    for _ in range(n):
        body = {"inputs": _tensors([ROWS[int(i)] for i in rng.integers(0, 3, size=int(rng.integers(1, 4)))])}
        how = int(rng.integers(0, 8))
        t = body["inputs"][int(rng.integers(0, 3))]
        if how == 1:
            t[str(rng.choice(["name", "shape", "datatype", "data", "parameters"]))] = values[int(rng.integers(0, len(values)))]
        elif how == 2:
            del t[str(rng.choice(["name", "shape", "datatype", "data"]))]
        elif how == 3:
            t["datatype"] = str(rng.choice(["BOOL", "UINT8", "INT8", "FP16", "BF16", "BYTES", "INT64"]))
        elif how == 4:
            t["parameters"] = {"binary_data_size": int(rng.integers(-2, 40))}
        elif how == 5:
            body[str(rng.choice(["outputs", "parameters", "id", "inputs"]))] = values[int(rng.integers(0, len(values)))]
        raw = json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        if how == 6:
            raw = raw[:int(rng.integers(0, len(raw)))]
        elif how == 7:
            headers["Inference-Header-Content-Length"] = str(rng.choice(["-1", "abc", str(len(raw) + 5), str(len(raw) // 2)]))
        out.append((raw, headers))
    return out


def test_3000_mutated_requests_never_5xx(client):
    rng = np.random.default_rng(0)
    codes = Counter()
    for raw, headers in _mutations(rng, 3000):
        r = client.post("/v2/models/churn/infer", content=raw, headers=headers)
        codes[r.status_code] += 1
        assert r.status_code in (200, 400), (raw[:300], r.status_code, r.text[:300])
        if r.status_code == 400:
            assert r.json()["error"]
    assert codes[200] > 300 and codes[400] > 1000, codes
