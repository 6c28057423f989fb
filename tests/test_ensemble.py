"""model auto on tables: the weighted ensemble (k-fold bagging, greedy selection), CatBoost and LightGBM-XT, presets,
--time-limit, and that the ensemble is one artifact: predict, export (one ONNX graph), explain, serve."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import train_quick, user_error

pytest.importorskip("catboost")


@pytest.fixture(scope="module")
def customers(tmp_path_factory) -> str:
    """1,200 rows of ISLR Default with the positives over-represented (a categorical, two numerics)."""
    from forgeml.data.bundled import load_bundled

    df, _ = load_bundled("default")
    rows = pd.concat([df[df["default"] == "Yes"], df[df["default"] == "No"].sample(870, random_state=0)])
    path = tmp_path_factory.mktemp("data") / "customers.csv"
    rows.sample(frac=1, random_state=1).to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory, customers):
    root = tmp_path_factory.mktemp("ens")
    return train_quick(root, "ens", customers, {"name": "auto"}, target="default")


def test_model_auto_on_a_table_trains_the_bagged_ensemble(ensemble_run):
    manifest = json.loads((ensemble_run / "manifest.json").read_text())
    assert manifest["model"]["name"] == "ensemble"
    index = json.loads((ensemble_run / "ensemble" / "ensemble.json").read_text())
    summary = index["summary"]
    assert summary["folds"] == 5 and summary["rows"] == 1022  # train + validation pooled, every row out-of-fold
    assert [m["name"] for m in summary["members"]] == ["lightgbm", "catboost", "lightgbm_xt"]
    assert all(m["fits"] == 5 and 0.5 < m["score"] <= 1 for m in summary["members"])
    weights = {m["name"]: m["weight"] for m in summary["members"]}
    assert sum(weights.values()) == pytest.approx(1, abs=1e-3)
    # the greedy selection never scores below its best member on the rows it chose on
    assert summary["ensemble_score"] >= max(m["score"] for m in summary["members"]) - 1e-12
    kept = [m for m in index["members"]]
    assert {m["name"] for m in kept} == {n for n, w in weights.items() if w > 0}
    for m in kept:  # each fold model saved by its own learner
        assert all((ensemble_run / "ensemble" / m["name"] / str(i) / m["file"]).is_file() for i in range(m["fits"]))
    report = (ensemble_run / "report.html").read_text()
    assert "<h2>Ensemble</h2>" in report and "out-of-fold over 1022 rows" in report


def test_the_ensemble_predicts_exports_and_explains_as_one_model(ensemble_run, customers):
    from forgeml import api
    from forgeml.export.run import export
    from forgeml.run import load

    rows = pd.read_csv(customers).head(40)
    pred = api.predict(ensemble_run, rows)
    assert list(pred.columns[:1]) == ["prediction"] and np.allclose(pred.filter(like="proba_").sum(axis=1), 1)
    info = export(ensemble_run)  # one graph: every fold model of every kept member, weighted and summed
    assert info["parity"]["max_abs_diff"] < 1e-5
    import onnx

    graph = onnx.load(str(ensemble_run / "model.onnx")).graph
    assert [o.name for o in graph.output] == ["probabilities"]
    assert sum(n.op_type == "Mul" and n.name.endswith("/weighted") for n in graph.node) == \
        sum(m["fits"] for m in json.loads((ensemble_run / "ensemble" / "ensemble.json").read_text())["members"])
    loaded = load(ensemble_run)
    assert loaded.raw(rows).shape == (40, 2)
    api.explain(ensemble_run, method="permutation", quiet=True)
    assert (ensemble_run / "explanations" / "permutation_importance.csv").is_file()


def test_the_validation_scores_are_out_of_fold(ensemble_run):
    """The fold models saw the validation rows; the choice and the report use their out-of-fold outputs there."""
    from forgeml.run import load, run_config
    from forgeml.tasks import family_of

    metrics = json.loads((ensemble_run / "metrics.json").read_text())
    cfg = run_config(ensemble_run)
    val = family_of(cfg).split_rows(cfg)["val"]
    loaded = load(ensemble_run)
    in_fold = loaded.task.metrics(loaded.task.truth(val, "default", loaded.preprocessor),
                                  loaded.task.outputs(loaded.raw(val)))["log_loss"]
    assert metrics["val"]["log_loss"] > in_fold  # scored on rows the models trained on, it would look better


def test_greedy_selection_weights_the_useful_members():
    from forgeml.models.ensemble import select
    from forgeml.tasks import make_task

    task = make_task("classification", {"labels": ["no", "yes"]})
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    good = np.stack([np.zeros(400), (y * 2 - 1) * 2 + rng.normal(size=400)], axis=1)
    noise = np.stack([np.zeros(400), rng.normal(size=400)], axis=1)
    weights, score = select(task, {"noise": noise, "good": good}, y, rounds=10)
    assert weights["good"] > 0.5 and weights["noise"] < weights["good"] and score > 0.9


def test_regression_and_multiclass_ensembles(tmp_path):
    from forgeml.export.run import export

    reg = train_quick(tmp_path, "reg", "bundled:diabetes", {"name": "auto"})
    s = json.loads((reg / "ensemble" / "ensemble.json").read_text())["summary"]
    assert s["metric"] == "rmse" and s["ensemble_score"] <= min(m["score"] for m in s["members"]) + 1e-9
    assert export(reg)["parity"]["max_abs_diff"] < 1e-3
    multi = train_quick(tmp_path, "multi", "bundled:iris", {"name": "ensemble", "members": ["lightgbm", "lightgbm_xt"]})
    assert json.loads((multi / "metrics.json").read_text())["test"]["accuracy"] > 0.85
    assert export(multi)["parity"]["max_abs_diff"] < 1e-5


def test_catboost_alone_and_its_native_categoricals(tmp_path, customers):
    from forgeml.errors import RunError
    from forgeml.export.run import export

    run = train_quick(tmp_path, "cb", customers, {"name": "catboost", "native_categoricals": False}, target="default")
    assert export(run)["parity"]["max_abs_diff"] < 1e-5
    native = train_quick(tmp_path, "cbn", customers, {"name": "catboost"}, target="default")
    with pytest.raises(RunError, match="native categorical columns"):
        export(native)


def test_presets_fast_keeps_the_mlp_against_lightgbm(tmp_path, customers):
    run = train_quick(tmp_path, "fast", customers, {"name": "auto", "presets": "fast"}, target="default")
    metrics = json.loads((run / "metrics.json").read_text())
    assert [c["model"] for c in metrics["candidates"]] == ["mlp", "lightgbm"]


def test_a_time_limit_trains_members_in_order_until_it_is_spent(tmp_path, customers, capsys):
    from forgeml import api

    said = []
    run = api.train({"name": "budget", "runs_dir": str(tmp_path / "runs"), "data": {"source": customers, "target": "default"},
                     "tracking": {"uri": "none"}, "train": {"time_limit": 2.5},
                     "model": {"name": "ensemble", "members": ["lightgbm", "lightgbm_xt", "catboost"], "folds": 2}},
                    say=said.append).run_dir
    fitted = [m["name"] for m in json.loads((run / "ensemble" / "ensemble.json").read_text())["summary"]["members"]]
    assert fitted[:2] == ["lightgbm", "lightgbm_xt"]
    if len(fitted) == 2:  # a busy machine may leave CatBoost its time: then all three are there
        assert any("catboost not trained" in line for line in said)


def test_bad_ensemble_input_is_one_message(tmp_path, customers, capsys, monkeypatch):
    runs = str(tmp_path / "runs")
    msg = user_error(capsys, "train", "--data", customers, "--target", "default", "--runs-dir", runs, "--time-limit",
                     "0.01", "--name", "short", "--tracking-uri", "none", "-q")
    assert "too short" in msg and "needs about" in msg
    assert not (tmp_path / "runs" / "short").exists()  # no half-written run left behind
    msg = user_error(capsys, "train", "--data", customers, "--target", "default", "--runs-dir", runs, "--model",
                     "ensemble", "--set", "model.members=[lightgbm]", "-q")
    assert "at least two members" in msg
    msg = user_error(capsys, "train", "--data", customers, "--target", "default", "--runs-dir", runs, "--model", "mlp",
                     "--presets", "best", "-q")
    assert "--presets chooses what model auto trains" in msg

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "catboost" else real(name, *a))
    msg = user_error(capsys, "train", "--data", customers, "--target", "default", "--runs-dir", runs, "--model",
                     "ensemble", "--set", "model.members=[lightgbm,catboost]", "-q")
    assert "pip install 'forgeml[tables]'" in msg
    msg = user_error(capsys, "train", "--data", customers, "--target", "default", "--runs-dir", runs, "--model",
                     "catboost", "--name", "cb", "-q")
    assert "model catboost needs the 'catboost' package: pip install 'forgeml[tables]'" in msg
    assert not (tmp_path / "runs" / "cb").exists()
    from forgeml.models.ensemble import EnsembleParams

    assert EnsembleParams().member_names() == ["lightgbm", "lightgbm_xt"]  # the default leaves it out


def test_small_tables_train_trees_on_one_thread():
    from forgeml.cpus import SMALL_TABLE, threads_for_table, usable_cpus

    assert threads_for_table({"numeric": np.zeros((1000, 30))}) == 1
    assert threads_for_table({"numeric": np.zeros((SMALL_TABLE // 10, 10))}) == usable_cpus()


def test_the_ensemble_is_served_like_any_run(ensemble_run, customers):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from forgeml import api
    from forgeml.serve.app import ServeSettings, create_app
    from forgeml.serve.registry import build_registry

    rows = pd.read_csv(customers).drop(columns="default").head(5)
    with TestClient(create_app(build_registry([str(ensemble_run)]), ServeSettings())) as c:
        r = c.post("/v1/models/ens/predict", json={"instances": json.loads(rows.to_json(orient="records"))})
    assert r.status_code == 200, r.text
    want = api.predict(ensemble_run, rows).filter(like="proba_").to_numpy()
    assert np.abs(np.array(r.json()["probabilities"]) - want).max() < 1e-5
