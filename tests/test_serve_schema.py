"""The served OpenAPI schema is each model's own, built from its run's signature, and it tells the truth: schemathesis
(every default check: status codes, content types, response schemas, schema-valid data accepted, schema-violating
data rejected, auth) finds no failure against a served table model."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from forgeml.data.bundled import load_bundled

from conftest import train_quick

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
pytest.importorskip("httpx")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (the dev extra) is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from forgeml.run import signature  # noqa: E402
from forgeml.serve import schemas  # noqa: E402
from forgeml.serve.app import ServeSettings, create_app  # noqa: E402
from forgeml.serve.registry import build_registry  # noqa: E402

KEY = "schema-s3cret"
ROW = {"student": "Yes", "balance": 1500.0, "income": 20000.0}



@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A classification MLP on a numeric + categorical table, a LightGBM regression and an IsolationForest detector
    (small, quick runs)."""
    root = tmp_path_factory.mktemp("schema")
    df, target = load_bundled("default")
    few = pd.concat([df[df[target] == "Yes"].head(150), df[df[target] == "No"].head(250)])  # both classes, 400 rows
    few.rename(columns={target: "churned"}).to_csv(root / "churn.csv", index=False)
    iris, label = load_bundled("iris")
    iris = iris.drop(columns=[label]).assign(shop=np.where(np.arange(len(iris)) % 3 == 0, "north", "south"))
    iris.to_csv(root / "flowers.csv", index=False)
    return {"churn": train_quick(root, "churn", str(root / "churn.csv"), {"name": "mlp", "hidden": [16]}, "churned"),
            "diabetes": train_quick(root, "diabetes", "bundled:diabetes", {"name": "lightgbm", "n_estimators": 20}),
            "flowers": train_quick(root, "flowers", str(root / "flowers.csv"), {"name": "isolation_forest"},
                              task={"name": "anomaly"})}


@pytest.fixture(scope="module")
def app(runs):
    registry = build_registry([str(runs["churn"]), str(runs["diabetes"]), str(runs["flowers"])])
    return create_app(registry, ServeSettings(api_key=KEY, max_instances=50))


@pytest.fixture(scope="module")
def spec(app):
    with TestClient(app) as c:
        return c.get("/openapi.json").json()


def _schema(spec: dict, ref_or_schema: dict) -> dict:
    ref = ref_or_schema.get("$ref")
    return spec["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else ref_or_schema


def _body(spec: dict, path: str) -> dict:
    return _schema(spec, spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"])


def _answer(spec: dict, path: str, status: str = "200") -> dict:
    return _schema(spec, spec["paths"][path]["post"]["responses"][status]["content"]["application/json"]["schema"])


def test_the_predict_route_documents_the_models_own_fields_and_labels(app, spec):
    for path in ("/v1/models/churn/predict", "/v1/models/churn/versions/1/predict"):
        body = _body(spec, path)
        assert body["additionalProperties"] is False and body["required"] == ["instances"]
        instances = body["properties"]["instances"]
        assert (instances["minItems"], instances["maxItems"]) == (1, 50)
        row = _schema(spec, instances["items"])
        assert row["additionalProperties"] is False and row["required"] == ["student", "balance", "income"]
        assert row["properties"]["balance"]["type"] == row["properties"]["income"]["type"] == ["number", "null"]
        assert row["properties"]["student"]["type"] == ["string", "number", "boolean", "null"]
        assert body["examples"][0]["instances"][0]["student"] == "No"  # the most frequent level
        answer = _answer(spec, path)
        assert answer["properties"]["labels"]["items"]["enum"] == ["No", "Yes"]
        assert answer["properties"]["predictions"]["items"]["enum"] == ["No", "Yes"]
        assert answer["properties"]["probabilities"]["items"]["maxItems"] == 2
        assert set(answer["required"]) == {"model", "version", "predictions", "probabilities", "labels"}
        for status in ("400", "401", "413", "422"):  # every 4xx answer has the ErrorBody shape
            assert _answer(spec, path, status)["required"] == ["detail"]
    # the same listing for the generic route: it still answers, but the schema lists each model's own
    assert "/v1/models/{name}/predict" not in spec["paths"] and "/v1/models/{name}" in spec["paths"]
    assert list(spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == [app.state.metrics.content_type]


def test_the_model_listing_shows_the_runs_signature(app, runs):
    """GET /v1/models (what the web page builds its form from) lists the run's signature."""
    manifest = json.loads((runs["churn"] / "manifest.json").read_text())
    with TestClient(app) as c:
        listed = {m["name"]: m for m in c.get("/v1/models", headers={"x-api-key": KEY}).json()["models"]}
    churn = listed["churn"]
    assert churn["input_schema"] == signature(manifest)["inputs"] and churn["output_schema"] == signature(manifest)["outputs"]
    assert [(f["name"], f["type"]) for f in churn["input_schema"]] == [("student", "categorical"), ("balance", "numeric"),
                                                                       ("income", "numeric")]
    assert churn["input_schema"][0]["levels"] == ["No", "Yes"] and churn["labels"] == ["No", "Yes"]
    assert set(listed["flowers"]["output_schema"]) == {"scores", "is_anomaly"} and listed["flowers"]["labels"] is None


def test_regression_and_anomaly_responses_are_their_outputs(app, spec):
    reg, anomaly = _answer(spec, "/v1/models/diabetes/predict"), _answer(spec, "/v1/models/flowers/predict")
    assert set(reg["required"]) == {"model", "version", "predictions"}
    assert reg["properties"]["predictions"]["items"] == {"type": "number"}
    assert set(anomaly["required"]) == {"model", "version", "scores", "is_anomaly"}
    assert anomaly["properties"]["is_anomaly"]["items"] == {"type": "boolean"}
    diabetes, target = load_bundled("diabetes")
    rows = {"diabetes": diabetes.drop(columns=[target]).head(3).to_dict("records"),
            "flowers": [{"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2,
                         "shop": "north"},
                        {"sepal length (cm)": 50.0, "sepal width (cm)": None, "petal length (cm)": -3, "petal width (cm)": 9,
                         "shop": "unseen"}],
            "churn": [ROW]}
    with TestClient(app) as c:
        for name, instances in rows.items():
            r = c.post(f"/v1/models/{name}/predict", json={"instances": instances}, headers={"x-api-key": KEY})
            assert r.status_code == 200, r.text
            body = r.json()
            # the answer has exactly the signature's outputs beside model and version, and its pydantic model takes it
            model = app.state.registry.get(name)
            assert list(body) == ["model", "version", *model.signature["outputs"]]
            assert all(len(v) == len(instances) for k, v in body.items() if k not in ("model", "version", "labels"))
            built = schemas.build(name, "1", model.signature, 50, 32, ())
            assert built.predict_response.model_validate(body).model_dump(by_alias=True) == body
    assert body["labels"] == ["No", "Yes"]


def test_the_pydantic_models_and_the_server_agree(app):
    """The request models document what the encoder enforces: a body the model accepts is one the server answers
    with 200, and each one it refuses gets a 422."""
    model = app.state.registry.get("churn")
    built = schemas.build(model.name, model.version, model.signature, 50, 32, ("ig", "lime"))
    bodies = [{"instances": [ROW]}, {"instances": [{**ROW, "student": None, "balance": None}]},
              {"instances": [{**ROW, "student": 3, "income": -2}, {**ROW, "student": True}]},
              {"instances": []}, {"instances": [ROW] * 51}, {"instances": [{**ROW, "balance": "a lot"}]},
              {"instances": [{**ROW, "balance": True}]}, {"instances": [{**ROW, "balance": 1e39}]},
              {"instances": [{"student": "No", "balance": 1.0}]}, {"instances": [{**ROW, "age": 3}]},
              {"instances": [ROW], "extra": 1}, {"instances": [{**ROW, "student": [1]}]}, {"rows": [ROW]}]
    with TestClient(app) as c:
        for body in bodies:
            r = c.post("/v1/models/churn/predict", json=body, headers={"x-api-key": KEY})
            try:
                built.predict_request.model_validate(body)
                valid = True
            except ValueError:
                valid = False
            assert r.status_code == (200 if valid else 422), (body, r.status_code, r.text)


def _schemathesis(app, max_examples: int, **select) -> tuple[list[str], Counter]:
    """Run schemathesis' engine (what `schemathesis run` does) against the app in this process, with every default
    check. Returns the distinct failures (and errors) and the count of (operation, status) answers."""
    from schemathesis.config import CacheConfig
    from schemathesis.engine import Status, events, from_schema
    from schemathesis.python.asgi import shutdown_lifespans

    config = schemathesis.Config(seed=1, cache=CacheConfig(enabled=False))
    config.projects.default.generation.update(max_examples=max_examples, deterministic=True, database="none")
    config.projects.default.update(headers={"X-API-Key": KEY})
    failures, answers = {}, Counter()
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
        schema = schema.include(**select["include"]) if "include" in select else schema.exclude(**select["exclude"])
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                for checks in event.recorder.checks.values():
                    for check in checks:
                        if check.status == Status.FAILURE and check.failure_info:
                            f = check.failure_info.failure
                            failures.setdefault((event.recorder.label, check.name, f.title),
                                                f"{f.message}\n{check.failure_info.code_sample}")
                answers.update((event.recorder.label, i.response.status_code)
                               for i in event.recorder.interactions.values() if i.response is not None)
            elif isinstance(event, (events.NonFatalError, events.FatalError)):
                what = getattr(event, "info", None) or getattr(event, "exception", None)
                failures.setdefault((getattr(event, "label", "engine"), "error", str(what)[:200]), str(what))
    finally:
        shutdown_lifespans()  # the engine started the app's lifespan (its batchers) for its requests
    return [f"{label} [{check}] {title}\n{text}" for (label, check, title), text in failures.items()], answers


def test_schemathesis_finds_no_failure_against_served_table_models(app):
    # the v2 routes: tests/test_serve_v2.py (a tensor's shape and its data cannot be tied in JSON Schema)
    failures, answers = _schemathesis(app, max_examples=40, exclude={"path_regex": "/explain$|^/v2"})
    assert not failures, "\n\n".join(failures)
    # it did reach the models: schema-valid rows predicted, invalid ones refused, a missing key refused
    for name in ("churn", "diabetes", "flowers"):
        ok = answers[(f"POST /v1/models/{name}/predict", 200)]
        refused = answers[(f"POST /v1/models/{name}/predict", 422)]
        assert ok >= 20 and refused >= 10, (name, answers)
    assert answers[("POST /v1/models/churn/predict", 401)] and answers[("GET /v1/models", 200)]


@pytest.mark.slow
def test_schemathesis_finds_no_failure_in_the_explain_routes(app):
    """Every valid explain request runs LIME or Integrated Gradients, so this one is slow: the classifier only."""
    failures, answers = _schemathesis(app, max_examples=5, include={"path_regex": "/churn/(versions/1/)?explain$"})
    assert not failures, "\n\n".join(failures)
    assert answers[("POST /v1/models/churn/explain", 200)] >= 3
