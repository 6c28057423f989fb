"""Anomaly detection (task: anomaly): no target; detectors score rows, a threshold from validation flags them, a label
column only evaluates. Real data: breast-cancer biopsies, benign as normal and a few malignant ones as anomalies."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from forgeml import api

from conftest import cli, fast_train, user_error

TRACK = ("--tracking-uri", "none", "-q")


def _biopsies(seed: int = 0, anomalies: int = 20) -> pd.DataFrame:
    """ADBench-style: all 357 benign rows (normal) and `anomalies` malignant rows drawn at random."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    df = data.frame.rename(columns={"target": "diagnosis"})
    df["diagnosis"] = np.where(df["diagnosis"] == 1, "benign", "malignant")
    rng = np.random.default_rng(seed)
    bad = df[df["diagnosis"] == "malignant"].sample(anomalies, random_state=int(rng.integers(1 << 31)))
    return pd.concat([df[df["diagnosis"] == "benign"], bad]).sample(frac=1, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="module")
def biopsies(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "biopsies.csv"
    _biopsies().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def forest(biopsies, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return api.train({"name": "forest", "runs_dir": str(runs), "data": {"source": str(biopsies)},
                      "task": {"name": "anomaly", "label": "diagnosis", "contamination": 0.05},
                      "model": {"name": "isolation_forest"}, "tracking": {"uri": "none"}}, quiet=True)


def test_detector_finds_the_malignant_biopsies_and_reports_the_baseline(forest):
    m = forest.metrics
    assert m["test"]["anomalies"] >= 2 and m["test"]["roc_auc"] > 0.85  # measured 0.9+; chance is 0.5
    assert m["test"]["precision_at_n"] > 5 * m["test"]["anomalies"] / m["test"]["n"]  # far above the base rate
    assert m["baseline"]["name"] == "isolation_forest" and m["baseline"]["test"]["roc_auc"] > 0.85
    manifest = forest.manifest
    assert manifest["task"] == "anomaly" and manifest["target"]["positive"] == "malignant"
    assert "diagnosis" not in [f["name"] for f in manifest["features"]]  # the label is never an input
    assert (forest.run_dir / "plots" / "scores.png").is_file() and (forest.run_dir / "plots" / "pr.png").is_file()
    report = (forest.run_dir / "report.html").read_text()
    assert "Test metrics" in report and 'alt="scores"' in report and 'alt="pr"' in report


def test_threshold_comes_from_validation_and_predict_returns_score_and_flag(forest, biopsies):
    from forgeml.tasks import family_of

    model = api.load(forest.run_dir)
    cfg = api.run_config(forest.run_dir)
    rows = family_of(cfg).split_rows(cfg)
    val_scores = model.predict(rows["val"])
    # contamination 0.05: the threshold flags the top 5% of validation scores, no more, no fewer (ties aside)
    assert val_scores["is_anomaly"].mean() == pytest.approx(0.05, abs=1.5 / len(val_scores))
    assert model.manifest["target"]["threshold"] == pytest.approx(np.quantile(val_scores["score"], 0.95))
    out = model.predict(pd.read_csv(biopsies).drop(columns=["diagnosis"]).head(50))
    assert list(out.columns) == ["score", "is_anomaly"] and out["is_anomaly"].dtype == bool
    assert (out["is_anomaly"] == (out["score"] >= model.manifest["target"]["threshold"])).all()
    assert not (forest.run_dir / "model.skops").read_bytes().startswith(b"\x80")  # no pickle


def test_the_label_never_reaches_the_fit(biopsies, in_tmp, monkeypatch):
    """The detector's fit sees the 30 measurements and no target; the label only scores the result."""
    from forgeml.models import get_model

    learner = get_model("lof")
    seen = {}
    real_fit = learner.fit

    def spy(params, task, train, y_train, *args, **kwargs):
        seen.update(train=train, y=y_train)
        return real_fit(params, task, train, y_train, *args, **kwargs)

    monkeypatch.setattr(learner, "fit", spy)
    r = api.train({"name": "spy", "data": {"source": str(biopsies)}, "task": {"name": "anomaly", "label": "diagnosis"},
                   "model": {"name": "lof"}, "tracking": {"uri": "none"}}, quiet=True)
    assert seen["y"] is None and set(seen["train"]) == {"numeric"} and seen["train"]["numeric"].shape[1] == 30
    assert r.metrics["test"]["roc_auc"] > 0.5


def test_auto_without_labels_trains_every_detector_and_keeps_the_most_central(biopsies, in_tmp, capsys):
    """No label: the loop trains the autoencoder and Deep SVDD too; the choice is model centrality on validation."""
    df = pd.read_csv(biopsies).drop(columns=["diagnosis"])
    df.to_csv(in_tmp / "unlabelled.csv", index=False)
    code = cli("train", "--data", str(in_tmp / "unlabelled.csv"), "--task", "anomaly", "--contamination", "0.1",
               "--epochs", "2", "--name", "u", "--tracking-uri", "none")
    assert code == 0
    m = json.loads((in_tmp / "runs" / "u" / "metrics.json").read_text())
    assert {c["model"] for c in m["candidates"]} == {"isolation_forest", "lof", "autoencoder", "deep_svdd"}
    assert m["test"]["roc_auc"] is None and m["test"]["flagged"] is not None
    centrality = {c["model"]: c["val"]["centrality"] for c in m["candidates"]}
    assert m["primary_metric"] == "centrality" and all(-1 <= v <= 1 for v in centrality.values())
    assert m["model"] == max(centrality, key=centrality.get)
    assert f"kept {m['model']}" in capsys.readouterr().err


def test_deep_detectors_train_with_the_loop_and_predict_after_loading(biopsies, in_tmp):
    for name in ("autoencoder", "deep_svdd"):
        r = api.train({"name": name, "data": {"source": str(biopsies)}, "task": {"name": "anomaly", "label": "diagnosis"},
                       "model": {"name": name}, "train": fast_train(epochs=15, lr=3e-3), "tracking": {"uri": "none"}},
                      quiet=True)
        assert r.metrics["history"][-1]["train_loss"] < r.metrics["history"][0]["train_loss"]  # it learned
        assert r.metrics["test"]["roc_auc"] > 0.7
        probe = pd.read_csv(biopsies).head(10)
        again = api.load(r.run_dir).predict(probe)
        assert again["score"].notna().all()


def test_images_with_the_autoencoder(in_tmp):
    """bundled:digits as images: the digit column is left out of the inputs, the autoencoder scores pixels."""
    r = api.train({"name": "digits", "data": {"source": "bundled:digits"}, "task": {"name": "anomaly"},
                   "model": {"name": "autoencoder", "hidden": [32, 8]}, "train": fast_train(epochs=2),
                   "tracking": {"uri": "none"}}, quiet=True)
    assert [f["type"] for f in r.manifest["features"]] == ["image"]
    assert r.metrics["test"]["flagged"] > 0


@pytest.mark.parametrize("extra, message", [
    (("--label", "nope"), "label column 'nope' not found"),
    (("--label", "grade"), "has 3 values; name the anomaly value with --positive"),
    (("--label", "diagnosis", "--positive", "fatal"), "--positive 'fatal' is not a value of 'diagnosis'"),
    (("--contamination", "0.7"), "contamination"),
    (("--positive", "malignant"), "positive needs a label column"),
])
def test_bad_input_is_one_clear_message(extra, message, biopsies, in_tmp, capsys):
    df = pd.read_csv(biopsies)
    df["grade"] = np.arange(len(df)) % 3
    df.to_csv(in_tmp / "b.csv", index=False)
    assert message in user_error(capsys, "train", "--data", in_tmp / "b.csv", "--task", "anomaly", "--model",
                                 "isolation_forest", *extra, *TRACK)


def test_identical_rows_and_an_empty_column_are_refused(in_tmp, capsys):
    pd.DataFrame({"a": [1.0] * 40, "b": ["x"] * 40}).to_csv(in_tmp / "same.csv", index=False)
    assert "every training row is identical" in user_error(capsys, "train", "--data", in_tmp / "same.csv", "--task",
                                                           "anomaly", "--model", "lof", *TRACK)
    pd.DataFrame({"a": np.arange(40.0), "b": [None] * 40}).to_csv(in_tmp / "empty.csv", index=False)
    assert "column 'b' is entirely missing" in user_error(capsys, "train", "--data", in_tmp / "empty.csv", "--task",
                                                          "anomaly", "--model", "lof", *TRACK)


def test_a_classifier_is_not_a_detector(biopsies, in_tmp, capsys):
    assert "is not an anomaly detector" in user_error(capsys, "train", "--data", biopsies, "--task", "anomaly",
                                                      "--model", "mlp", *TRACK)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Biopsies plus a categorical column, detected by IsolationForest: export must one-hot it inside the graph."""
    root = tmp_path_factory.mktemp("mixed")
    df = _biopsies()
    df["clinic"] = np.where(np.arange(len(df)) % 3 == 0, "north", "south")
    df.to_csv(root / "mixed.csv", index=False)
    run = api.train({"name": "mixed", "runs_dir": str(root / "runs"), "data": {"source": str(root / "mixed.csv")},
                     "task": {"name": "anomaly", "label": "diagnosis"}, "model": {"name": "isolation_forest"},
                     "tracking": {"uri": "none"}}, quiet=True).run_dir
    return run, df.drop(columns=["diagnosis"])


def test_the_exported_graph_gives_score_and_flag_with_onnxruntime_alone(mixed):
    ort = pytest.importorskip("onnxruntime")
    run, rows = mixed
    info = api.export(run)
    assert [o["name"] for o in info["outputs"]] == ["score", "is_anomaly"] and info["parity"]["max_abs_diff"] < 1e-4
    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    spec = {i["name"]: i["columns"] for i in info["inputs"]}
    rows = rows.head(40).copy()
    rows.loc[0, "clinic"] = "unknown clinic"  # unseen: all zeros in the one-hot block, as in training
    feed = {"numeric": rows[spec["numeric"]].to_numpy(np.float32),
            "categorical": rows[spec["categorical"]].astype(str).to_numpy(object)}
    score, flag = session.run(["score", "is_anomaly"], feed)
    ours = api.load(run).predict(rows)
    np.testing.assert_allclose(score, ours["score"], atol=1e-4)
    assert (flag == ours["is_anomaly"].to_numpy()).mean() >= 0.97  # equal but for float32 ties at the threshold


def test_a_served_detector_answers_scores_and_flags(mixed):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from forgeml.serve.app import ServeSettings, create_app
    from forgeml.serve.registry import build_registry

    run, rows = mixed
    instances = json.loads(rows.head(5).to_json(orient="records"))
    with TestClient(create_app(build_registry([str(run)]), ServeSettings())) as client:
        r = client.post("/v1/models/mixed/predict", json={"instances": instances})
        page = client.get("/")
    assert r.status_code == 200, r.text
    body, ours = r.json(), api.load(run).predict(rows.head(5))
    np.testing.assert_allclose(body["scores"], ours["score"], atol=1e-4)
    assert body["is_anomaly"] == list(ours["is_anomaly"])
    assert page.status_code == 200 and "body.scores" in page.text  # the page shows a detector's score


def test_a_torch_detector_exports_too(biopsies, in_tmp):
    pytest.importorskip("onnxruntime")
    r = api.train({"name": "ae", "data": {"source": str(biopsies)}, "task": {"name": "anomaly", "label": "diagnosis"},
                   "model": {"name": "autoencoder"}, "train": fast_train(epochs=2), "tracking": {"uri": "none"}}, quiet=True)
    assert api.export(r.run_dir)["parity"]["max_abs_diff"] < 1e-4


def test_compress_is_not_built_for_anomaly_runs_and_says_so(forest, capsys):
    """(explain works on anomaly runs: tests/test_anomaly_explain.py)"""
    msg = user_error(capsys, "compress", forest.run_dir, "--quantize", "int8")
    assert "works on classification and regression runs so far" in msg and "is an anomaly run" in msg


def test_row_numbers_ids_and_constant_columns_are_left_out_with_a_notice(in_tmp, capsys):
    # an R export: its rownames column numbers the rows; plus a record id and a column with one value
    df = _biopsies()
    df.insert(0, "rownames", np.arange(1, len(df) + 1))
    df["record"] = [f"rec-{i:05d}" for i in range(len(df))]
    df["site"] = "lab-1"
    df.to_csv(in_tmp / "export.csv", index=False)
    assert cli("train", "--data", in_tmp / "export.csv", "--task", "anomaly", "--label", "diagnosis", "--model",
               "isolation_forest", "--name", "ids", "--tracking-uri", "none") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "left out 3 columns that must not be features" in err and "'rownames' (an ID: row numbers" in err
    manifest = json.loads((in_tmp / "runs/ids/manifest.json").read_text())
    names = [f["name"] for f in manifest["features"]]
    assert not {"rownames", "record", "site"} & set(names) and len(names) == 30
    assert {e["column"]: e["reason"] for e in manifest["data"]["preparation"]["excluded_columns"]} == {
        "rownames": "id_like", "record": "id_like", "site": "constant"}


def test_a_date_column_is_a_detector_input_exported_served_and_explained(in_tmp):
    """Biopsies received every six hours through 2021: the date's parts are inputs of IsolationForest (and LOF),
    in the exported graph and the server; a row received in 1950 at 3 a.m. scores as more anomalous than itself."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from forgeml.serve.app import ServeSettings, create_app
    from forgeml.serve.registry import build_registry

    df = _biopsies()
    df["received"] = pd.date_range("2021-01-04 09:00", periods=len(df), freq="6h").strftime("%Y-%m-%d %H:%M")
    df.to_csv(in_tmp / "dated.csv", index=False)
    run = api.train({"name": "dated", "data": {"source": "dated.csv"}, "task": {"name": "anomaly", "label": "diagnosis"},
                     "model": {"name": "auto"}, "tracking": {"uri": "none"}}, quiet=True)
    assert {"name": "received", "type": "datetime"} in run.manifest["features"]
    assert [c["model"] for c in run.metrics["candidates"]] == ["isolation_forest", "lof"]  # the detectors that take dates
    rows = df.drop(columns=["diagnosis"]).head(30)
    odd = rows.assign(received="1950-06-01 03:00")
    model = api.load(run.run_dir)
    assert (model.predict(odd)["score"].to_numpy() > model.predict(rows)["score"].to_numpy()).mean() > 0.9
    info = api.export(run.run_dir)
    assert "datetime" in [i["name"] for i in info["inputs"]] and info["parity"]["max_abs_diff"] < 1e-4
    instances = json.loads(odd.head(3).to_json(orient="records"))
    with TestClient(create_app(build_registry([str(run.run_dir)]), ServeSettings())) as client:
        r = client.post("/v1/models/dated/predict", json={"instances": instances})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["scores"], model.predict(odd.head(3))["score"], atol=1e-4)
    odd.head(2).to_csv(in_tmp / "odd.csv", index=False)
    explained = api.explain(run.run_dir, str(in_tmp / "odd.csv"), out=in_tmp / "why", quiet=True)
    tops = [rec["permutation"]["top"][0] if "permutation" in rec else rec["top"][0] for rec in explained["instances"]]
    assert tops == ["received", "received"]  # the date is what makes these rows odd


@pytest.mark.parametrize("positive", [1, 1.0, "1"])
def test_the_anomaly_value_of_a_numeric_label_is_named_as_its_keys(in_tmp, positive):
    df = _biopsies()
    df["diagnosis"] = (df["diagnosis"] == "malignant").astype(int)  # a 0/1 label column
    df.to_csv(in_tmp / "b.csv", index=False)
    run = api.train({"name": "num", "data": {"source": "b.csv"}, "model": {"name": "isolation_forest"},
                     "task": {"name": "anomaly", "label": "diagnosis", "positive": positive},
                     "tracking": {"uri": "none"}}, quiet=True, overwrite=True)
    assert run.manifest["target"]["positive"] == "1" and run.metrics["test"]["roc_auc"] > 0.85
