"""Tables: model auto (MLP vs LightGBM), regression, mixed feature types, predict and evaluate round trips."""
import json

import numpy as np
import pandas as pd
import pytest

from forgeml import api
from forgeml.config import build_config
from forgeml.data.bundled import load_bundled

from conftest import fast_train


def _train(name, data, tracking="none", **cfg):
    return api.train({"name": name, "data": data, "tracking": {"uri": tracking}, "train": fast_train(), **cfg}, quiet=True)


def test_auto_fast_trains_mlp_and_lightgbm_reports_both_and_keeps_the_better(in_tmp):
    result = _train("default", {"source": "bundled:default"}, train=fast_train(epochs=4),
                    model={"name": "auto", "presets": "fast"})
    m = result.metrics
    assert [c["model"] for c in m["candidates"]] == ["mlp", "lightgbm"]
    vals = {c["model"]: c["val"]["roc_auc"] for c in m["candidates"]}
    assert m["model"] == max(vals, key=vals.get)
    assert m["baseline"]["name"] == "lightgbm"
    # the metrics.json contract
    for key in ("accuracy", "f1_macro", "roc_auc", "pr_auc", "log_loss", "ece", "confusion_matrix"):
        assert key in m["test"] and key in m["val"]
    assert set(m["test"]["per_class"]) == {"No", "Yes"}
    assert set(m["test"]["per_class"]["Yes"]) == {"precision", "recall", "f1", "support"}
    assert m["test"]["per_class"]["Yes"]["support"] + m["test"]["per_class"]["No"]["support"] == m["test"]["n"] == 1500
    assert set(m["baseline"]) >= {"name", "test", "val"}
    # real data, real signal: balance predicts default well
    assert m["test"]["roc_auc"] > 0.9 and m["baseline"]["test"]["roc_auc"] > 0.9
    on_disk = json.loads((result.run_dir / "metrics.json").read_text())
    assert on_disk["test"]["accuracy"] == m["test"]["accuracy"]


def test_lightgbm_run_predicts_from_its_text_model_file(in_tmp):
    result = _train("gbm", {"source": "bundled:breast_cancer"}, model={"name": "lightgbm"})
    assert (result.run_dir / "model.lightgbm.txt").is_file()
    assert not (result.run_dir / "model.safetensors").exists()
    df, target = load_bundled("breast_cancer")
    pred = api.load(result.run_dir).predict(df.drop(columns=[target]))
    assert list(pred.columns) == ["prediction", "proba_benign", "proba_malignant"]
    assert np.allclose(pred[["proba_benign", "proba_malignant"]].sum(axis=1), 1.0)
    assert (pred["prediction"] == df[target]).mean() > 0.95


def test_predict_and_evaluate_reproduce_the_training_metrics(in_tmp):
    result = _train("bc", {"source": "bundled:breast_cancer"}, model={"name": "mlp"}, train=fast_train(epochs=8))
    again = api.evaluate(result.run_dir)  # recomputes the same test split from the saved config
    assert again["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])
    assert again["log_loss"] == pytest.approx(result.metrics["test"]["log_loss"], rel=1e-5)
    df, target = load_bundled("breast_cancer")
    df.to_csv("labelled.csv", index=False)
    df.drop(columns=[target]).head(7).to_json("rows.jsonl", orient="records", lines=True)
    out = api.predict(result.run_dir, "rows.jsonl", "pred.parquet")
    assert len(out) == 7 and pd.read_parquet("pred.parquet").equals(out)
    full = api.evaluate(result.run_dir, "labelled.csv")
    assert full["n"] == len(df) and full["accuracy"] > 0.9


def test_early_stopping_and_the_kept_epoch_use_the_validation_split_never_the_test_split(in_tmp):
    """README: "the test split is never used for training or early stopping". Every epoch's monitored numbers must be
    the validation split's: the kept (best) epoch's val_loss and val_accuracy are what the final model scores on the
    validation split, and not what it scores on the test split."""
    result = _train("es", {"source": "bundled:breast_cancer", "split": {"val": 0.15, "test": 0.3}}, model={"name": "mlp"},
                    train=fast_train(epochs=30, lr=3e-3, threads=1, early_stopping={"monitor": "val_loss", "patience": 2}))
    m = result.metrics
    best = m["history"][m["training"]["best_epoch"]]
    assert m["training"]["monitor"] == "val_loss" and m["training"]["best_score"] == best["val_loss"]
    assert best["val_loss"] == pytest.approx(m["val"]["log_loss"], rel=1e-4)
    assert best["val_accuracy"] == m["val"]["accuracy"]
    assert best["val_loss"] != pytest.approx(m["test"]["log_loss"], rel=1e-3)
    assert api.evaluate(result.run_dir)["log_loss"] == pytest.approx(m["test"]["log_loss"], rel=1e-5)
    assert result.manifest["data"]["rows"]["val"] == m["val"]["n"] != m["test"]["n"]


def test_regression_reports_errors_on_the_original_scale(in_tmp):
    result = _train("diab", {"source": "bundled:diabetes"}, train=fast_train(epochs=20))
    m = result.metrics
    assert set(m["test"]) >= {"mae", "rmse", "r2"} and "accuracy" not in m["test"]
    df, target = load_bundled("diabetes")
    pred = api.load(result.run_dir).predict(df.drop(columns=[target]))
    assert list(pred.columns) == ["prediction"]
    # predictions live on the target's scale (25..346), not the standardized one
    assert 50 < pred["prediction"].mean() < 250
    assert m["test"]["r2"] > 0.0 and m["baseline"]["test"]["rmse"] > 0
    assert (result.run_dir / "plots" / "regression.png").is_file()


def mixed_table(n=600, seed=0):
    """numeric + categorical + free text; the label needs all three."""
    rng = np.random.default_rng(seed)
    amount = rng.normal(0, 1, n)
    plan = rng.choice(["basic", "pro", "team"], n)
    words = rng.choice(["great support", "terrible latency", "fine overall", "billing was wrong"], n)
    score = amount + (plan == "pro") - 1.5 * np.isin(words, ["terrible latency", "billing was wrong"])
    notes = [f"customer says {w} about the product today" for w in words]
    return pd.DataFrame({"amount": amount, "plan": plan, "notes": notes, "churn": np.where(score < 0, "yes", "no")})


def test_mixed_numeric_categorical_text_table(in_tmp):
    mixed_table().to_csv("mixed.csv", index=False)
    result = _train("mixed", {"source": "mixed.csv", "target": "churn"}, train=fast_train(epochs=15, lr=3e-3))
    types = {f["name"]: f["type"] for f in result.manifest["features"]}
    assert types == {"amount": "numeric", "plan": "categorical", "notes": "text"}
    assert [c["model"] for c in result.metrics["candidates"]] == ["mlp", "lightgbm_tfidf"]
    assert result.metrics["baseline"]["name"] == "lightgbm_tfidf"  # the table-with-text baseline, a candidate
    assert result.metrics["test"]["accuracy"] > 0.85
    # unseen category and missing values at predict time do not break anything
    rows = [{"amount": 0.3, "plan": "enterprise", "notes": "billing was wrong again"}, {"amount": None, "plan": None, "notes": None}]
    assert len(api.load(result.run_dir).predict(rows)) == 2


def test_feature_type_override_from_config(in_tmp):
    df = mixed_table(200)
    df["zip"] = np.random.default_rng(1).integers(10000, 10010, len(df))
    df.to_csv("mixed.csv", index=False)
    cfg = build_config({"name": "ov", "data": {"source": "mixed.csv", "target": "churn", "features": {"zip": "categorical", "notes": "ignore"}},
                        "tracking": {"uri": "none"}, "train": fast_train(epochs=1)})
    result = api.train(cfg, quiet=True)
    types = {f["name"]: f["type"] for f in result.manifest["features"]}
    assert types == {"amount": "numeric", "plan": "categorical", "zip": "categorical"}


def test_numbers_read_as_floats_match_the_same_numbers_as_ints(in_tmp):
    """A blank cell makes pandas read ints as floats (94110.0); predicting with 94110 must hit the same category."""
    rng = np.random.default_rng(0)
    zips = rng.choice([94110, 10001, 60601], 400)
    df = pd.DataFrame({"zip": zips.astype(float), "noise": rng.normal(size=400), "label": (zips == 94110).astype(float)})
    df.loc[5, "zip"] = np.nan
    df.loc[7, "label"] = np.nan  # an unlabelled row: dropped, and the target column stays float
    df.to_csv("train.csv", index=False)
    result = _train("zips", {"source": "train.csv", "target": "label", "features": {"zip": "categorical"}},
                    model={"name": "lightgbm"})
    assert result.manifest["target"]["labels"] == [0, 1]
    model = api.load(result.run_dir)
    pred = model.predict([{"zip": 94110, "noise": 0.0}, {"zip": 10001, "noise": 0.0}])
    assert pred["prediction"].tolist() == [1, 0]
    clean = pd.DataFrame({"zip": [94110, 60601], "noise": [0.1, 0.2], "label": [1, 0]})
    clean.to_csv("clean.csv", index=False)
    assert api.evaluate(result.run_dir, "clean.csv")["accuracy"] == 1.0


def test_predictions_keep_the_callers_index(in_tmp):
    result = _train("idx", {"source": "bundled:iris"}, model={"name": "lightgbm"})
    df, target = load_bundled("iris")
    subset = df[df["petal length (cm)"] > 5].drop(columns=[target])
    pred = api.load(result.run_dir).predict(subset)
    assert pred.index.equals(subset.index)
    subset["pred"] = pred["prediction"]
    assert subset["pred"].notna().all()


def test_many_classes_with_few_rows_each_still_split(in_tmp):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(20), 4)
    pd.DataFrame({"x": y + rng.normal(0, 0.1, len(y)), "y": [f"c{i}" for i in y]}).to_csv("many.csv", index=False)
    with pytest.warns(UserWarning, match="stratif"):
        result = _train("many", {"source": "many.csv", "target": "y"}, model={"name": "mlp"})
    assert sum(result.manifest["data"]["rows"].values()) == 80


def test_baseline_probabilities_cover_a_class_missing_from_training():
    from sklearn.linear_model import LogisticRegression

    from forgeml.evaluate.baseline import _raw_from_sklearn
    from forgeml.tasks import fit_task

    task = fit_task("classification", pd.Series(["a", "b", "c"]))
    model = LogisticRegression().fit(np.array([[0.0], [1.0], [0.1], [0.9]]), [0, 2, 0, 2])  # class 1 never seen
    raw = _raw_from_sklearn(model, np.array([[0.5], [0.2]]), task)
    proba = task.outputs(raw)["proba"]
    assert proba.shape == (2, 3) and (proba[:, 1] < 1e-6).all() and np.allclose(proba.sum(axis=1), 1)
